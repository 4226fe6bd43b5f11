package miniprogram

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// SchemaCall is the schema of POST /miniprogram/v1/{api} bodies.
const SchemaCall = "miniprogram/call"

// maxWait bounds a long poll on a session's return.
const maxWait = 60 * time.Second

// Register mounts the contract under /miniprogram/v1.
func (s *Service) Register(r gin.IRouter, v sandbox.Validator, j sandbox.Journal) {
	g := r.Group("/miniprogram/v1", httpapi.UseRenderer(RenderErrMsg), httpapi.Journaled(j, ""))
	g.POST("/*api", httpapi.Handle(func(c *gin.Context) error { return s.handleCall(c, v) }))
	g.GET("/sessions/:id/return", httpapi.Interruptible(s.o.Shutdown), httpapi.Handle(s.handleReturn))
	g.GET("/sessions/:id/plugin/:getter", httpapi.Handle(s.handleGetter))
	g.GET("/sessions/:id", httpapi.Handle(s.handleSession))
}

// apiName returns the wx.* name errMsg uses for an API path
// ("plugin/navigate" → "navigateTo", "app/launchMiniProgram" → "launchMiniProgram").
func apiName(api string) string {
	switch api {
	case sandbox.APIPluginNavigate:
		return "navigateTo"
	case sandbox.APIAppLaunchMiniProgram:
		return "launchMiniProgram"
	}
	return api
}

const keyAPI = "mpsandbox.api"

// handleCall handles "POST /miniprogram/v1/{api}".
func (s *Service) handleCall(c *gin.Context, v sandbox.Validator) error {
	api := strings.Trim(c.Param("api"), "/")
	c.Set(keyAPI, api)
	// Decoded once, for the schema and the products, which read the args
	// from the document; the session keeps the args' bytes as sent, and
	// the caller's few fields are read from their own bytes.
	doc, members, err := httpapi.DecodeDoc(v, SchemaCall, httpapi.Body(c))
	if err != nil {
		return err
	}
	var caller sandbox.Caller
	if err := json.Unmarshal(members["caller"], &caller); err != nil {
		return sandbox.Invalid("request body cannot be decoded", sandbox.Violation{Path: "/caller", Message: err.Error()})
	}
	args, _ := doc.(map[string]any)["args"].(map[string]any) // the call schema requires an object
	m, ok := s.o.Merchants.ByAppID(caller.AppID)
	if !ok {
		return sandbox.Invalid("unknown caller", sandbox.Violation{Path: "/caller/appId",
			Message: fmt.Sprintf("appId %q is not a sandbox merchant's mini-program (GET /sandbox/v1/merchants lists them)", caller.AppID)})
	}
	x := httpapi.Exchange(c)
	x.MchID = m.MchID
	explicit := c.GetHeader("X-Sandbox-Scenario")
	if explicit == "" {
		explicit = caller.Scenario
	}
	sess, warnings, err := s.Launch(c.Request.Context(), &sandbox.Call{
		API: api, Caller: caller, Args: members["args"], Doc: args, Merchant: m, RequestID: httpapi.RequestID(c), Scenario: explicit,
	})
	if sess != nil {
		x.Product, x.SessionID, x.Scenario = sess.Product, sess.ID, sess.Scenario
	}
	if err != nil {
		return err
	}
	for _, w := range warnings {
		httpapi.Warn(c, w)
	}
	if sess.Scenario != "" {
		c.Header("X-Sandbox-Scenario", sess.Scenario)
	}
	errMsg := apiName(api) + ":ok"
	if o, ok := s.products[sess.Product].(sandbox.CallResult); ok {
		if m, ok := o.CallErrMsg(sess); ok {
			errMsg = m
		}
	}
	c.JSON(http.StatusOK, launched{
		ErrMsg: errMsg, SessionID: sess.ID, Mode: sess.Mode, ReturnURL: "/miniprogram/v1/sessions/" + sess.ID + "/return",
		Scenario: sess.Scenario, State: sess.State,
	})
	return nil
}

// launched is the answer to a wx.* call, its keys in the order gin.H
// rendered them before (sorted).
type launched struct {
	ErrMsg    string               `json:"errMsg"`
	Mode      string               `json:"mode"`
	ReturnURL string               `json:"return_url"`
	Scenario  string               `json:"scenario"`
	SessionID string               `json:"session_id"`
	State     sandbox.SessionState `json:"state"`
}

// handleReturn handles "GET /miniprogram/v1/sessions/{id}/return": what the
// caller sees when the user comes back — 200 with App.onShow options (or
// the App SDK's response) — or 202 while the user is still away.
func (s *Service) handleReturn(c *gin.Context) error {
	wait := time.Duration(0)
	if w := c.Query("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return sandbox.Invalid("bad wait", sandbox.Violation{Path: "/wait", Message: fmt.Sprintf("%q is not a duration like 10s", w)})
		}
		wait = min(d, maxWait)
	}
	sess, err := s.Wait(c.Request.Context(), c.Param("id"), wait)
	if err != nil {
		return err
	}
	s.note(c, sess)
	c.Header("X-Sandbox-Session-State", string(sess.State))
	if sess.State == sandbox.SessionPending {
		c.JSON(http.StatusAccepted, gin.H{"session_id": sess.ID, "state": sess.State})
		return nil
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", sess.Return)
	return nil
}

// handleSession handles "GET /miniprogram/v1/sessions/{id}".
func (s *Service) handleSession(c *gin.Context) error {
	sess, err := s.o.Store.GetSession(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	s.note(c, sess)
	p := s.products[sess.Product]
	out := struct {
		*sandbox.Session
		Actions []string `json:"actions,omitempty"`
	}{Session: sess}
	if p != nil && sess.State == sandbox.SessionPending {
		out.Actions = p.Actions(sess)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// handleGetter handles "GET /miniprogram/v1/sessions/{id}/plugin/{getter}".
func (s *Service) handleGetter(c *gin.Context) error {
	sess, err := s.o.Store.GetSession(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	s.note(c, sess)
	name := c.Param("getter")
	p, ok := s.products[sess.Product].(sandbox.PluginGetter)
	if !ok {
		return sandbox.Errorf(sandbox.CodeNotFound, "session %s (%s) has no plugin getters", sess.ID, sess.Product)
	}
	res, err := p.Getter(c.Request.Context(), sess, name)
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", res)
	return nil
}

func (s *Service) note(c *gin.Context, sess *sandbox.Session) {
	x := httpapi.Exchange(c)
	x.MchID, x.Product, x.SessionID, x.Scenario = sess.MchID, sess.Product, sess.ID, sess.Scenario
}

// RenderErrMsg renders errors as WeChat's callback results do:
// {"errMsg": "<api>:fail <reason>"} plus every violation.
func RenderErrMsg(c *gin.Context, e *sandbox.Error) {
	api := c.GetString(keyAPI)
	if api == "" {
		api = "request"
	}
	reason := e.Message
	if len(e.Fields) > 0 {
		parts := make([]string, 0, len(e.Fields))
		for _, f := range e.Fields {
			parts = append(parts, strings.TrimSpace(f.Path+" "+f.Message))
		}
		reason = strings.Join(parts, "; ")
	}
	body := gin.H{"errMsg": apiName(api) + ":fail " + reason, "request_id": httpapi.RequestID(c)}
	if len(e.Fields) > 0 {
		body["violations"] = e.Fields
	}
	if e.Diagnostics != "" {
		body["diagnostics"] = e.Diagnostics
	}
	c.PureJSON(httpapi.Status(e), body)
}

// newSessionID returns "ses_" and 24 hex digits: the real time at in
// milliseconds (6 bytes), then 6 random bytes. Ids that grow with time land
// at the end of the store's indexes (sessions, journal by session) instead
// of on a random page each, which keeps a busy jump path's commits small.
func newSessionID(at time.Time) string {
	var b [12]byte
	ms := uint64(at.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return "ses_" + hex.EncodeToString(b[:])
}
