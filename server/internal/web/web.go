// Package web is the QA page: an HTML shell, a little plain JavaScript and
// CSS, embedded in the binary, with no build step and no
// external assets (QA may have no internet). It is a view over the admin
// API only: every click is a /sandbox/v1 call that curl could make, so the
// page holds no state and needs no access to the store.
//
// The same shell answers GET / (overview, scenarios, sessions, journal,
// notifications) and GET /act/{session_id}, the stand-in for a manual
// session's target that the wx.* shim opens in a web-view; the script picks
// the view from the path. The shell carries no data, so it is served
// without a token: off loopback the script asks for one before it fetches
// anything.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
)

//go:embed assets
var assetFS embed.FS

// contentSecurityPolicy allows only the page's own origin: the shell has
// no inline script or style, and the dictionary is a non-executed JSON
// script.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentType is an asset's type, fixed here rather than read from the
// host's mime.types, which differ between machines (and a scratch image
// has none).
func contentType(ext string) (string, bool) {
	switch ext {
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	}
	return "", false
}

// file is one embedded asset, ready to serve.
type file struct {
	body  []byte
	ctype string
	etag  string // quoted strong validator: the content's hash
	hash  string // the same hash, as the ?v= of the shell's links
}

// Page serves the QA page. Everything it serves is computed once by New.
type Page struct {
	shell *file
	files map[string]*file
}

// New renders the shell and indexes the assets. It fails only if the
// embedded files are broken, which the package's tests rule out.
func New() (*Page, error) {
	p := &Page{files: map[string]*file{}}
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "page.html" || name == "i18n.json" {
			continue
		}
		b, err := assetFS.ReadFile("assets/" + name)
		if err != nil {
			return nil, err
		}
		ctype, ok := contentType(path.Ext(name))
		if !ok {
			return nil, fmt.Errorf("assets/%s: no content type for %s files", name, path.Ext(name))
		}
		p.files[name] = newFile(b, ctype)
	}
	dict, err := dictionary()
	if err != nil {
		return nil, err
	}
	shell, err := assetFS.ReadFile("assets/page.html")
	if err != nil {
		return nil, err
	}
	html, err := render(shell, p.files, dict)
	if err != nil {
		return nil, err
	}
	p.shell = newFile(html, "text/html; charset=utf-8")
	return p, nil
}

// action is one {{...}} of page.html.
var action = regexp.MustCompile(`{{[^}]*}}`)

// render fills in page.html's two kinds of action: {{asset "name"}}, an
// asset's versioned link, and {{.Dict}}, the dictionary as JSON. They are
// written in html/template's syntax, and the result is byte for byte what
// html/template makes of them there (the package's tests compare the two):
// the link is a URL of [/?=.a-z0-9] only, which its URL and attribute
// escapers leave as it is, and a map in a JSON script is json.Marshal's
// output (which escapes <, > and &). It is not html/template because
// executing a template, any template, links text/template's reflective
// method lookup, which keeps every exported method of every type in the
// binary (gin's HTTP/3 server, its YAML, TOML, BSON and protobuf
// renderers...): several MB, docs/PERFORMANCE.md.
func render(page []byte, files map[string]*file, dict map[string]map[string]string) ([]byte, error) {
	var err error
	out := action.ReplaceAllFunc(page, func(a []byte) []byte {
		if err != nil {
			return nil
		}
		switch inner := strings.TrimSpace(string(a[2 : len(a)-2])); {
		case inner == ".Dict":
			var b []byte
			b, err = json.Marshal(dict)
			return b
		case strings.HasPrefix(inner, "asset "):
			name := strings.TrimSpace(strings.TrimPrefix(inner, "asset "))
			if len(name) < 2 || name[0] != '"' || name[len(name)-1] != '"' {
				break
			}
			name = name[1 : len(name)-1]
			f, ok := files[name]
			if !ok {
				err = fmt.Errorf("page.html links to %s, which is not in assets/", name)
				return nil
			}
			return []byte("/ui/" + name + "?v=" + f.hash)
		}
		err = fmt.Errorf("page.html: %s is neither {{asset \"file\"}} nor {{.Dict}}", a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func newFile(b []byte, ctype string) *file {
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:6])
	return &file{body: b, ctype: ctype, etag: `"` + h + `"`, hash: h}
}

// dictionary returns the page's words by language ("zh", the default, and
// "en"), each a map from key to text.
func dictionary() (map[string]map[string]string, error) {
	b, err := assetFS.ReadFile("assets/i18n.json")
	if err != nil {
		return nil, err
	}
	var d map[string]map[string]string
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("assets/i18n.json: %w", err)
	}
	return d, nil
}

// Register mounts the page: the shell at / and /act/{session_id}, the
// assets under /ui/.
func (p *Page) Register(r gin.IRouter) {
	for _, route := range []string{"/", "/act/:id"} {
		r.GET(route, p.serveShell)
		r.HEAD(route, p.serveShell)
	}
	r.GET("/ui/:file", p.serveAsset)
	r.HEAD("/ui/:file", p.serveAsset)
}

// serveShell handles "GET /" and "GET /act/{session_id}". The shell is the
// same for both; it is revalidated on each load so a new binary's page is
// never stale.
func (p *Page) serveShell(c *gin.Context) {
	serve(c, p.shell, "no-cache")
}

// serveAsset handles "GET /ui/{file}". A link with the current ?v= is
// cached for good, since another content has another hash.
func (p *Page) serveAsset(c *gin.Context) {
	f, ok := p.files[c.Param("file")]
	if !ok {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("no such asset\n"))
		return
	}
	cache := "no-cache"
	if c.Query("v") == f.hash {
		cache = "public, max-age=31536000, immutable"
	}
	serve(c, f, cache)
}

func serve(c *gin.Context, f *file, cacheControl string) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	// The first URL may carry ?token=: never pass it on to another site.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", f.etag)
	if match := c.GetHeader("If-None-Match"); match != "" && etagMatches(match, f.etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, f.ctype, f.body)
}

// etagMatches reports whether an If-None-Match list names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(list, etag string) bool {
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == etag || v == "*" {
			return true
		}
	}
	return false
}
