package report

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Formats of GET /sandbox/v1/merchants/{mchid}/report.
const (
	FormatJSON     = "json"
	FormatHTML     = "html"
	FormatMarkdown = "md"
)

// Register mounts the report on the admin group (/sandbox/v1), which has
// checked access and renders the house envelope.
func (b *Builder) Register(g gin.IRouter) {
	g.GET("/merchants/:mchid/report", httpapi.Handle(b.handleReport))
}

// handleReport handles "GET /sandbox/v1/merchants/{mchid}/report?since=…&until=…&format=json|html|md".
func (b *Builder) handleReport(c *gin.Context) error {
	mchid := c.Param("mchid")
	if !httpapi.ScopeOf(c).Sees(mchid) {
		return sandbox.Errorf(sandbox.CodeNotFound, "merchant %q does not exist in this sandbox", mchid)
	}
	now := time.Now().UTC()
	var vs []sandbox.Violation
	until, v := timeParam(c, "until", now, now)
	vs = append(vs, v...)
	since, v := timeParam(c, "since", time.Time{}, now)
	vs = append(vs, v...)
	format := c.DefaultQuery("format", FormatJSON)
	if format != FormatJSON && format != FormatHTML && format != FormatMarkdown {
		vs = append(vs, sandbox.Violation{Path: "/format", Message: fmt.Sprintf("%q is not a report format; use json, html or md", format)})
	}
	if len(vs) == 0 && since.After(until) {
		vs = append(vs, sandbox.Violation{Path: "/since", Message: fmt.Sprintf("%s is after until (%s)", since.Format(time.RFC3339), until.Format(time.RFC3339))})
	}
	if len(vs) > 0 {
		return sandbox.Invalid("bad report parameters", vs...)
	}
	r, err := b.Build(c.Request.Context(), mchid, since, until)
	if err != nil {
		return err
	}
	name := "mpsandbox-report-" + mchid
	// The exports are files a team attaches elsewhere: their evidence links
	// name this sandbox.
	base := "http://" + c.Request.Host
	if c.Request.TLS != nil {
		base = "https://" + c.Request.Host
	}
	switch format {
	case FormatHTML:
		c.Header("Content-Disposition", `inline; filename="`+name+`.html"`)
		c.Data(http.StatusOK, "text/html; charset=utf-8", HTML(r, base))
	case FormatMarkdown:
		c.Header("Content-Disposition", `inline; filename="`+name+`.md"`)
		c.Data(http.StatusOK, "text/markdown; charset=utf-8", Markdown(r, base))
	default:
		c.JSON(http.StatusOK, r)
	}
	return nil
}

// timeParam reads a time query parameter: RFC 3339, Unix seconds, or a
// duration before now ("24h").
func timeParam(c *gin.Context, name string, def, now time.Time) (time.Time, []sandbox.Violation) {
	s := strings.TrimSpace(c.Query(name))
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return def, []sandbox.Violation{{Path: "/" + name, Message: fmt.Sprintf(
		"%q is not a time: give RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, or a duration before now (24h)", s)}}
}
