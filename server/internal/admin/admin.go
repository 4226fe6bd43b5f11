// Package admin is the sandbox's own API, /sandbox/v1: merchants and their
// test credentials, scenarios, sessions, the journal, notifications, the
// clock and the schemas. The QA page is a view over it; anything the page
// does, curl can do.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/journal"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/miniprogram"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Schemas is what the admin API needs of the compiled schema set.
type Schemas interface {
	sandbox.Validator
	Names() []string
	Source(name string) ([]byte, bool)
}

// Journal is what the admin API needs of the journal.
type Journal interface {
	ServeSSE(w http.ResponseWriter, r *http.Request, f sandbox.JournalFilter)
	// Flush waits until everything recorded before the call is stored:
	// a journal read sees every exchange that ended before it.
	Flush(ctx context.Context) error
}

// Notifications is what the admin API needs of the notification worker.
type Notifications interface {
	Redeliver(ctx context.Context, mchid, id string) (*sandbox.Notification, error)
	FailNext(ctx context.Context, mchid, id string, n int) (*sandbox.Notification, error)
	Hold(ctx context.Context, mchid, id string) (*sandbox.Notification, error)
	Release(ctx context.Context, mchid, id string) (*sandbox.Notification, error)
	// HostViolations checks notify_hosts against the operator's allow-list.
	HostViolations(path string, hosts []string) []sandbox.Violation
}

// API serves /sandbox/v1.
type API struct {
	Store     sandbox.Store
	Merchants *merchant.Directory
	Scenarios sandbox.Scenarios
	Schemas   Schemas
	Sessions  *miniprogram.Service
	// Products are the registered products, in order.
	Products      []sandbox.Product
	Journal       Journal
	Notifications Notifications
	Clock         *sandbox.Clock
	Access        httpapi.Access
	// Extra mounts products' own admin routes (e.g. repayment's
	// /vehicle-users) on the authenticated /sandbox/v1 group.
	Extra []func(g gin.IRouter)
	// Shutdown closes when the server starts shutting down; event streams
	// end then.
	Shutdown <-chan struct{}
}

// Register mounts the admin API.
func (a *API) Register(r gin.IRouter) {
	g := r.Group("/sandbox/v1", httpapi.UseRenderer(httpapi.RenderAdmin), noStore, a.Access.Require())
	h := httpapi.Handle
	g.GET("/merchants", h(a.listMerchants))
	g.POST("/merchants", h(a.createMerchant))
	g.GET("/merchants/:mchid", h(a.getMerchant))
	g.PATCH("/merchants/:mchid", h(a.updateMerchant))
	g.GET("/merchants/:mchid/credentials", h(a.getCredentials))
	g.POST("/merchants/:mchid/token", h(a.rotateToken))
	g.GET("/merchants/:mchid/export", h(a.exportMerchant))
	g.GET("/merchants/:mchid/scenarios", h(a.getActive))
	g.PUT("/merchants/:mchid/scenarios/:product", h(a.setActive))
	g.DELETE("/merchants/:mchid/scenarios/:product", h(a.clearActive))
	g.GET("/merchants/:mchid/api-faults", h(a.listAPIFaults))
	g.POST("/merchants/:mchid/api-faults", h(a.addAPIFault))
	g.DELETE("/merchants/:mchid/api-faults", h(a.deleteAPIFault))
	g.DELETE("/merchants/:mchid/api-faults/:id", h(a.deleteAPIFault))

	g.GET("/products", h(a.listProducts))

	g.GET("/scenarios", h(a.listScenarios))
	g.GET("/scenarios/:id", h(a.getScenario))

	g.GET("/sessions", h(a.listSessions))
	g.GET("/sessions/:id", h(a.getSession))
	g.POST("/sessions/:id/resolve", h(a.resolveSession))

	g.GET("/journal", h(a.queryJournal))
	g.GET("/journal/stream", httpapi.Interruptible(a.Shutdown), h(a.streamJournal))
	g.GET("/journal/:id", h(a.getExchange))

	g.GET("/notifications", h(a.listNotifications))
	g.GET("/notifications/:id", h(a.getNotification))
	g.POST("/notifications/:id/:op", h(a.notificationOp))

	g.GET("/clock", h(a.getClock))
	g.POST("/clock/advance", h(a.advanceClock))

	g.GET("/schemas", h(a.listSchemas))
	g.GET("/schemas/*name", h(a.getSchema))
	g.POST("/validate/*name", h(a.validate))
	for _, mount := range a.Extra {
		mount(g)
	}
}

// noStore keeps every answer of the admin API — credentials, tokens, the
// journal — out of caches, and its type from being sniffed.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Next()
}

// merchantView is a merchant without its secrets.
type merchantView struct {
	MchID        string                            `json:"mchid"`
	Name         string                            `json:"name"`
	AppID        string                            `json:"appid"`
	ServiceID    string                            `json:"service_id"`
	PCloudAppID  string                            `json:"pcloud_app_id"`
	NotifyHosts  []string                          `json:"notify_hosts"`
	KeyMode      string                            `json:"platform_key_mode"`
	SubMerchants []sandbox.SubMerchant             `json:"sub_merchants"`
	Strict       bool                              `json:"strict"`
	APIFaults    []sandbox.APIFault                `json:"api_faults"`
	Active       map[string]sandbox.ActiveScenario `json:"active_scenarios"`
	Clock        clockView                         `json:"clock"`
	CreatedAt    time.Time                         `json:"created_at"`
}

type clockView struct {
	MchID   string    `json:"mchid"`
	Now     time.Time `json:"now"`
	Offset  string    `json:"offset"`
	OffsetS float64   `json:"offset_seconds"`
	Scale   float64   `json:"scale"`
}

func (a *API) clockOf(mchid string) clockView {
	off := a.Clock.Offset(mchid)
	return clockView{MchID: mchid, Now: a.Clock.Now(mchid), Offset: off.String(), OffsetS: off.Seconds(), Scale: a.Clock.Scale()}
}

func (a *API) view(m *sandbox.Merchant) merchantView {
	hosts := m.NotifyHosts
	if hosts == nil {
		hosts = []string{}
	}
	active := m.Active
	if active == nil {
		active = map[string]sandbox.ActiveScenario{}
	}
	subs := m.SubMerchants
	if subs == nil {
		subs = []sandbox.SubMerchant{}
	}
	return merchantView{MchID: m.MchID, Name: m.Name, AppID: m.AppID, ServiceID: m.ServiceID, PCloudAppID: m.PCloudAppID,
		NotifyHosts: hosts, KeyMode: m.KeyMode(), SubMerchants: subs, Strict: m.Strict, APIFaults: apiFaults(m), Active: active, Clock: a.clockOf(m.MchID), CreatedAt: m.CreatedAt}
}

// merchant returns the merchant named in the path if the caller may see it;
// one it may not see is reported as absent, so tokens cannot probe.
func (a *API) merchant(c *gin.Context, mchid string) (*sandbox.Merchant, error) {
	if !httpapi.ScopeOf(c).Sees(mchid) {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "merchant %q does not exist in this sandbox", mchid)
	}
	return a.Merchants.Require(mchid)
}

// listMerchants handles "GET /sandbox/v1/merchants".
func (a *API) listMerchants(c *gin.Context) error {
	scope := httpapi.ScopeOf(c)
	out := []merchantView{}
	for _, m := range a.Merchants.List() {
		if scope.Sees(m.MchID) {
			out = append(out, a.view(m))
		}
	}
	c.JSON(http.StatusOK, gin.H{"merchants": out})
	return nil
}

// createMerchant handles "POST /sandbox/v1/merchants".
func (a *API) createMerchant(c *gin.Context) error {
	if !httpapi.ScopeOf(c).All {
		return sandbox.Errorf(sandbox.CodeForbidden, "a merchant token cannot create merchants; use the admin token")
	}
	var req merchant.CreateRequest
	if err := httpapi.DecodeJSON(a.Schemas, "admin/merchant-create", httpapi.Body(c), &req); err != nil {
		return err
	}
	if vs := a.Notifications.HostViolations("/notify_hosts", req.NotifyHosts); len(vs) > 0 {
		return sandbox.Invalid("notify_hosts can only narrow what this sandbox allows", vs...)
	}
	m, err := a.Merchants.Create(c.Request.Context(), req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, credentials(m))
	return nil
}

// getMerchant handles "GET /sandbox/v1/merchants/{mchid}".
func (a *API) getMerchant(c *gin.Context) error {
	m, err := a.merchant(c, c.Param("mchid"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, a.view(m))
	return nil
}

// credentialsView is the merchant's sandbox test credentials, under the
// names client code configures itself from.
type credentialsView struct {
	*sandbox.Merchant
	MerchantToken string `json:"merchant_token"`
	// APIFaults are not credentials: the merchant's view lists them.
	APIFaults []sandbox.APIFault `json:"api_faults,omitempty"`
}

func credentials(m *sandbox.Merchant) credentialsView {
	return credentialsView{Merchant: m, MerchantToken: m.Token}
}

// updateMerchant handles "PATCH /sandbox/v1/merchants/{mchid}".
func (a *API) updateMerchant(c *gin.Context) error {
	if _, err := a.merchant(c, c.Param("mchid")); err != nil {
		return err
	}
	var req merchant.UpdateRequest
	if err := httpapi.DecodeJSON(a.Schemas, "admin/merchant-update", httpapi.Body(c), &req); err != nil {
		return err
	}
	if req.NotifyHosts != nil {
		if vs := a.Notifications.HostViolations("/notify_hosts", *req.NotifyHosts); len(vs) > 0 {
			return sandbox.Invalid("notify_hosts can only narrow what this sandbox allows", vs...)
		}
	}
	m, err := a.Merchants.Change(c.Request.Context(), c.Param("mchid"), req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, a.view(m))
	return nil
}

// getCredentials handles "GET /sandbox/v1/merchants/{mchid}/credentials".
func (a *API) getCredentials(c *gin.Context) error {
	m, err := a.merchant(c, c.Param("mchid"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, credentials(m))
	return nil
}

// rotateToken handles "POST /sandbox/v1/merchants/{mchid}/token": a new
// merchant token replaces the old one, which stops working at once. The
// admin or the merchant itself may rotate it.
func (a *API) rotateToken(c *gin.Context) error {
	if _, err := a.merchant(c, c.Param("mchid")); err != nil {
		return err
	}
	m, err := a.Merchants.Update(c.Request.Context(), c.Param("mchid"), func(m *sandbox.Merchant) error {
		m.Token = httpapi.NewID("mps_")
		return nil
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, credentials(m))
	return nil
}

// listAPIFaults handles "GET /sandbox/v1/merchants/{mchid}/api-faults".
func (a *API) listAPIFaults(c *gin.Context) error {
	m, err := a.merchant(c, c.Param("mchid"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"api_faults": apiFaults(m)})
	return nil
}

func apiFaults(m *sandbox.Merchant) []sandbox.APIFault {
	if m.APIFaults == nil {
		return []sandbox.APIFault{}
	}
	return m.APIFaults
}

// addAPIFault handles "POST /sandbox/v1/merchants/{mchid}/api-faults".
func (a *API) addAPIFault(c *gin.Context) error {
	if _, err := a.merchant(c, c.Param("mchid")); err != nil {
		return err
	}
	var req merchant.APIFaultRequest
	if err := httpapi.DecodeJSON(a.Schemas, "admin/api-fault-create", httpapi.Body(c), &req); err != nil {
		return err
	}
	f, err := a.Merchants.AddAPIFault(c.Request.Context(), c.Param("mchid"), req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, f)
	return nil
}

// deleteAPIFault handles "DELETE /sandbox/v1/merchants/{mchid}/api-faults[/{id}]":
// one fault, or all of them.
func (a *API) deleteAPIFault(c *gin.Context) error {
	if _, err := a.merchant(c, c.Param("mchid")); err != nil {
		return err
	}
	if err := a.Merchants.DeleteAPIFault(c.Request.Context(), c.Param("mchid"), c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// getActive handles "GET /sandbox/v1/merchants/{mchid}/scenarios".
func (a *API) getActive(c *gin.Context) error {
	m, err := a.merchant(c, c.Param("mchid"))
	if err != nil {
		return err
	}
	out := map[string]any{}
	for _, p := range a.productNames() {
		entry := gin.H{"default": ""}
		if d := a.Scenarios.Default(p); d != nil {
			entry["default"] = d.ID
		}
		if act, ok := m.Active[p]; ok {
			entry["active"] = act
		}
		out[p] = entry
	}
	c.JSON(http.StatusOK, gin.H{"mchid": m.MchID, "products": out})
	return nil
}

func (a *API) productNames() []string {
	names := make([]string, len(a.Products))
	for i, p := range a.Products {
		names[i] = p.Name()
	}
	return names
}

func (a *API) knownProduct(p string) error {
	names := a.productNames()
	if slices.Contains(names, p) {
		return nil
	}
	return sandbox.Invalid("unknown product", sandbox.Violation{Path: "/product", Message: "must be one of " + strings.Join(names, ", ")})
}

// productView is a registered product as GET /sandbox/v1/products shows
// it: what the QA page builds its views from.
type productView struct {
	Name      string       `json:"name"`
	Targets   []targetView `json:"targets"`
	Actions   []string     `json:"actions"`
	Faults    []string     `json:"faults"`
	Scenarios []string     `json:"scenarios"`
	Default   string       `json:"default"`
}

type targetView struct {
	API string `json:"api"`
	Key string `json:"key"`
}

// listProducts handles "GET /sandbox/v1/products": every registered
// product with its targets, the actions its user may take, the notify
// faults it plays and its scenarios.
func (a *API) listProducts(c *gin.Context) error {
	out := make([]productView, 0, len(a.Products))
	for _, p := range a.Products {
		v := productView{Name: p.Name(), Targets: []targetView{}, Actions: p.Actions(nil), Faults: []string{}, Scenarios: []string{}}
		for _, t := range p.Targets() {
			v.Targets = append(v.Targets, targetView{API: t.API, Key: t.Key})
		}
		if nb, ok := p.(sandbox.NotifyBuilder); ok {
			v.Faults = append(v.Faults, nb.Faults()...)
		}
		for _, sc := range a.Scenarios.List(p.Name()) {
			v.Scenarios = append(v.Scenarios, sc.ID)
		}
		if d := a.Scenarios.Default(p.Name()); d != nil {
			v.Default = d.ID
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, gin.H{"products": out})
	return nil
}

// setActive handles "PUT /sandbox/v1/merchants/{mchid}/scenarios/{product}".
func (a *API) setActive(c *gin.Context) error {
	product := c.Param("product")
	if _, err := a.merchant(c, c.Param("mchid")); err != nil {
		return err
	}
	if err := a.knownProduct(product); err != nil {
		return err
	}
	var req sandbox.ActiveScenario
	if err := httpapi.DecodeJSON(a.Schemas, "admin/scenario-activate", httpapi.Body(c), &req); err != nil {
		return err
	}
	if _, err := a.Scenarios.Pick(product, req.ID, nil, nil); err != nil {
		return err
	}
	m, err := a.Merchants.Update(c.Request.Context(), c.Param("mchid"), func(m *sandbox.Merchant) error {
		m.Active[product] = req
		return nil
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, a.view(m))
	return nil
}

// clearActive handles "DELETE /sandbox/v1/merchants/{mchid}/scenarios/{product}".
func (a *API) clearActive(c *gin.Context) error {
	product := c.Param("product")
	if _, err := a.merchant(c, c.Param("mchid")); err != nil {
		return err
	}
	if err := a.knownProduct(product); err != nil {
		return err
	}
	m, err := a.Merchants.Update(c.Request.Context(), c.Param("mchid"), func(m *sandbox.Merchant) error {
		delete(m.Active, product)
		return nil
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, a.view(m))
	return nil
}

// listScenarios handles "GET /sandbox/v1/scenarios".
func (a *API) listScenarios(c *gin.Context) error {
	product := c.Query("product")
	if product != "" {
		if err := a.knownProduct(product); err != nil {
			return err
		}
	}
	list := a.Scenarios.List(product)
	if list == nil {
		list = []*sandbox.Scenario{}
	}
	c.JSON(http.StatusOK, gin.H{"scenarios": list})
	return nil
}

// getScenario handles "GET /sandbox/v1/scenarios/{id}".
func (a *API) getScenario(c *gin.Context) error {
	s, ok := a.Scenarios.Get(c.Param("id"))
	if !ok {
		return sandbox.Errorf(sandbox.CodeNotFound, "scenario %q does not exist (GET /sandbox/v1/scenarios lists them)", c.Param("id"))
	}
	c.JSON(http.StatusOK, s)
	return nil
}

// scopedMchID returns the mchid filter of a list request, narrowed to the
// caller's scope.
func scopedMchID(c *gin.Context) string {
	if s := httpapi.ScopeOf(c); !s.All {
		return s.MchID
	}
	return c.Query("mchid")
}

func limitOf(c *gin.Context) (int, error) {
	l := c.Query("limit")
	if l == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 1000 {
		return 0, sandbox.Invalid("bad query", sandbox.Violation{Path: "/limit", Message: "must be a whole number from 1 to 1000"})
	}
	return n, nil
}

func int64Query(c *gin.Context, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, sandbox.Invalid("bad query", sandbox.Violation{Path: "/" + name, Message: "must be a non-negative whole number"})
	}
	return n, nil
}

// listSessions handles "GET /sandbox/v1/sessions".
func (a *API) listSessions(c *gin.Context) error {
	limit, err := limitOf(c)
	if err != nil {
		return err
	}
	list, err := a.Store.ListSessions(c.Request.Context(), sandbox.SessionFilter{
		MchID: scopedMchID(c), Product: c.Query("product"), State: sandbox.SessionState(c.Query("state")), Limit: limit,
	})
	if err != nil {
		return err
	}
	if list == nil {
		list = []*sandbox.Session{}
	}
	c.JSON(http.StatusOK, gin.H{"sessions": list})
	return nil
}

func (a *API) session(c *gin.Context) (*sandbox.Session, error) {
	s, err := a.Store.GetSession(c.Request.Context(), c.Param("id"))
	if err != nil {
		return nil, err
	}
	if !httpapi.ScopeOf(c).Sees(s.MchID) {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "session %q does not exist", c.Param("id"))
	}
	return s, nil
}

// getSession handles "GET /sandbox/v1/sessions/{id}".
func (a *API) getSession(c *gin.Context) error {
	s, err := a.session(c)
	if err != nil {
		return err
	}
	out := gin.H{"session": s, "actions": []string{}}
	p, ok := a.Sessions.Product(s.Product)
	if ok && s.State == sandbox.SessionPending {
		out["actions"] = p.Actions(s)
	}
	if d, ok := p.(sandbox.SubjectDescriber); ok && s.Ref != "" {
		subject, err := d.Subject(c.Request.Context(), s)
		switch {
		case err == nil:
			out["subject"] = subject
		case !sandbox.IsCode(err, sandbox.CodeNotFound):
			return err
		}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// resolveSession handles "POST /sandbox/v1/sessions/{id}/resolve".
func (a *API) resolveSession(c *gin.Context) error {
	if _, err := a.session(c); err != nil {
		return err
	}
	var req struct {
		Action string `json:"action"`
	}
	if err := httpapi.DecodeJSON(a.Schemas, "admin/session-resolve", httpapi.Body(c), &req); err != nil {
		return err
	}
	s, err := a.Sessions.Resolve(c.Request.Context(), c.Param("id"), req.Action)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"session": s})
	return nil
}

func (a *API) journalFilter(c *gin.Context) (sandbox.JournalFilter, error) {
	f := sandbox.JournalFilter{
		Product: c.Query("product"), MchID: scopedMchID(c), SessionID: c.Query("session_id"),
		NotifyID: c.Query("notify_id"), Direction: c.Query("direction"),
	}
	var err error
	if f.Limit, err = limitOf(c); err != nil {
		return f, err
	}
	if f.BeforeID, err = int64Query(c, "before"); err != nil {
		return f, err
	}
	f.AfterID, err = int64Query(c, "after")
	return f, err
}

// journalPageBytes bounds a journal listing: the stored entries read for
// one page, and again the summaries written.
const journalPageBytes = 4 << 20

// queryJournal handles "GET /sandbox/v1/journal": summaries (bodies cut to
// a preview; GET /sandbox/v1/journal/{id} has the whole entry), newest
// first, streamed, a page ending early once it holds journalPageBytes;
// next_before is there when older entries match.
func (a *API) queryJournal(c *gin.Context) error {
	f, err := a.journalFilter(c)
	if err != nil {
		return err
	}
	f.MaxBytes = journalPageBytes
	ctx := c.Request.Context()
	if err := a.Journal.Flush(ctx); err != nil {
		return err
	}
	list, err := a.Store.QueryJournal(ctx, f)
	if err != nil {
		return err
	}
	older := false
	if len(list) > 0 {
		q := f
		q.BeforeID, q.AfterID, q.Limit = list[len(list)-1].ID, 0, 1
		more, err := a.Store.QueryJournal(ctx, q)
		if err != nil {
			return err
		}
		older = len(more) > 0
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(http.StatusOK)
	w := &countingWriter{w: c.Writer}
	enc := json.NewEncoder(w)
	_, _ = io.WriteString(w, `{"exchanges":[`)
	var last int64
	for i, x := range list {
		if i > 0 {
			if w.n >= journalPageBytes {
				older = true
				break
			}
			_, _ = io.WriteString(w, ",")
		}
		if enc.Encode(journal.Summary(x)) != nil {
			return nil // the client went; the status is out already
		}
		last, list[i] = x.ID, nil // let the entry go once written
	}
	_, _ = io.WriteString(w, "]")
	if older {
		_, _ = fmt.Fprintf(w, `,"next_before":%d`, last)
	}
	_, _ = io.WriteString(w, "}\n")
	return nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += n
	return n, err
}

// getExchange handles "GET /sandbox/v1/journal/{id}": the whole entry.
func (a *API) getExchange(c *gin.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return sandbox.Invalid("bad exchange id", sandbox.Violation{Path: "/id", Message: "must be a whole number"})
	}
	x, err := a.Store.GetExchange(c.Request.Context(), id)
	if err != nil {
		return err
	}
	// An entry of no merchant (a mistyped app_id, say) is the admin's
	// alone: its ids are sequential, and it may be anyone's request.
	if scope := httpapi.ScopeOf(c); !scope.All && (x.MchID == "" || !scope.Sees(x.MchID)) {
		return sandbox.Errorf(sandbox.CodeNotFound, "exchange %d does not exist", id)
	}
	c.JSON(http.StatusOK, x)
	return nil
}

// streamJournal handles "GET /sandbox/v1/journal/stream" (server-sent events).
func (a *API) streamJournal(c *gin.Context) error {
	f, err := a.journalFilter(c)
	if err != nil {
		return err
	}
	if f.AfterID > 0 && c.GetHeader("Last-Event-ID") == "" {
		c.Request.Header.Set("Last-Event-ID", strconv.FormatInt(f.AfterID, 10))
	}
	a.Journal.ServeSSE(c.Writer, c.Request, f)
	return nil
}

// listNotifications handles "GET /sandbox/v1/notifications".
func (a *API) listNotifications(c *gin.Context) error {
	limit, err := limitOf(c)
	if err != nil {
		return err
	}
	list, err := a.Store.ListNotifications(c.Request.Context(), sandbox.NotificationFilter{
		MchID: scopedMchID(c), Product: c.Query("product"), Ref: c.Query("ref"), State: sandbox.NotifyState(c.Query("state")), Limit: limit,
	})
	if err != nil {
		return err
	}
	if list == nil {
		list = []*sandbox.Notification{}
	}
	c.JSON(http.StatusOK, gin.H{"notifications": list})
	return nil
}

func (a *API) notification(c *gin.Context) (*sandbox.Notification, error) {
	n, err := a.Store.GetNotification(c.Request.Context(), c.Param("id"))
	if err != nil {
		return nil, err
	}
	if !httpapi.ScopeOf(c).Sees(n.MchID) {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "notification %q does not exist", c.Param("id"))
	}
	return n, nil
}

// getNotification handles "GET /sandbox/v1/notifications/{id}": the
// notification and every attempt journalled for it.
func (a *API) getNotification(c *gin.Context) error {
	n, err := a.notification(c)
	if err != nil {
		return err
	}
	if err := a.Journal.Flush(c.Request.Context()); err != nil {
		return err
	}
	stored, err := a.Store.QueryJournal(c.Request.Context(), sandbox.JournalFilter{NotifyID: n.ID, Limit: 1000, MaxBytes: journalPageBytes})
	if err != nil {
		return err
	}
	attempts := make([]*sandbox.Exchange, len(stored))
	for i, x := range stored {
		attempts[i] = journal.Summary(x)
	}
	c.JSON(http.StatusOK, gin.H{"notification": n, "attempts": attempts})
	return nil
}

// notificationOp handles "POST /sandbox/v1/notifications/{id}/{redeliver|fail-next|hold|release}".
func (a *API) notificationOp(c *gin.Context) error {
	n, err := a.notification(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	var out *sandbox.Notification
	switch op := c.Param("op"); op {
	case "redeliver":
		out, err = a.Notifications.Redeliver(ctx, n.MchID, n.ID)
	case "hold":
		out, err = a.Notifications.Hold(ctx, n.MchID, n.ID)
	case "release":
		out, err = a.Notifications.Release(ctx, n.MchID, n.ID)
	case "fail-next":
		var req struct {
			N int `json:"n"`
		}
		if err := httpapi.DecodeJSON(a.Schemas, "admin/notify-fail-next", httpapi.Body(c), &req); err != nil {
			return err
		}
		out, err = a.Notifications.FailNext(ctx, n.MchID, n.ID, req.N)
	default:
		return sandbox.Errorf(sandbox.CodeNotFound, "unknown operation %q; use redeliver, fail-next, hold or release", op)
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"notification": out})
	return nil
}

// getClock handles "GET /sandbox/v1/clock?mchid=…".
func (a *API) getClock(c *gin.Context) error {
	mchid := scopedMchID(c)
	if mchid == "" {
		out := []clockView{}
		for _, m := range a.Merchants.List() {
			out = append(out, a.clockOf(m.MchID))
		}
		c.JSON(http.StatusOK, gin.H{"clocks": out})
		return nil
	}
	if _, err := a.merchant(c, mchid); err != nil {
		return err
	}
	c.JSON(http.StatusOK, a.clockOf(mchid))
	return nil
}

// The bounds of clock advances: far enough for any expiry or retry
// schedule, and far from time.Duration's 292 years, past which a clock
// would wrap into the past.
const (
	maxAdvance     = 10 * 365 * 24 * time.Hour
	maxAdvanceText = "87600h (10 years)"
	maxOffset      = 50 * 365 * 24 * time.Hour
	maxOffsetText  = "438000h (50 years)"
)

// advanceClock handles "POST /sandbox/v1/clock/advance".
func (a *API) advanceClock(c *gin.Context) error {
	var req struct {
		MchID   string  `json:"mchid"`
		By      string  `json:"by"`
		Seconds float64 `json:"seconds"`
	}
	if err := httpapi.DecodeJSON(a.Schemas, "admin/clock-advance", httpapi.Body(c), &req); err != nil {
		return err
	}
	if _, err := a.merchant(c, req.MchID); err != nil {
		return err
	}
	if req.Seconds > maxAdvance.Seconds() {
		return sandbox.Invalid("clock advance too large", sandbox.Violation{Path: "/seconds", Message: fmt.Sprintf("must be at most %.0f (%s)", maxAdvance.Seconds(), maxAdvanceText)})
	}
	by := time.Duration(req.Seconds * float64(time.Second))
	if req.By != "" {
		d, err := time.ParseDuration(req.By)
		if err != nil || d <= 0 || d > maxAdvance {
			return sandbox.Invalid("bad duration", sandbox.Violation{Path: "/by", Message: "must be a positive Go duration like 90s or 1h, at most " + maxAdvanceText})
		}
		by = d
	}
	if off := a.Clock.Offset(req.MchID); off+by > maxOffset {
		return sandbox.Invalid("clock advance too large", sandbox.Violation{Path: "/by", Message: fmt.Sprintf(
			"merchant %s's clock is already %s ahead; advances may add up to %s in all", req.MchID, off, maxOffsetText)})
	}
	if _, err := a.Merchants.AdvanceClock(c.Request.Context(), req.MchID, by); err != nil {
		return err
	}
	c.JSON(http.StatusOK, a.clockOf(req.MchID))
	return nil
}

// listSchemas handles "GET /sandbox/v1/schemas".
func (a *API) listSchemas(c *gin.Context) error {
	c.JSON(http.StatusOK, gin.H{"schemas": a.Schemas.Names()})
	return nil
}

func schemaName(c *gin.Context) string {
	return strings.TrimSuffix(strings.Trim(c.Param("name"), "/"), ".schema.json")
}

// getSchema handles "GET /sandbox/v1/schemas/{name}".
func (a *API) getSchema(c *gin.Context) error {
	src, ok := a.Schemas.Source(schemaName(c))
	if !ok {
		return sandbox.Errorf(sandbox.CodeNotFound, "schema %q does not exist (GET /sandbox/v1/schemas lists them)", schemaName(c))
	}
	c.Data(http.StatusOK, "application/schema+json", src)
	return nil
}

// validate handles "POST /sandbox/v1/validate/{name}".
func (a *API) validate(c *gin.Context) error {
	name := schemaName(c)
	if _, ok := a.Schemas.Source(name); !ok {
		return sandbox.Errorf(sandbox.CodeNotFound, "schema %q does not exist (GET /sandbox/v1/schemas lists them)", name)
	}
	body := httpapi.Body(c)
	if !utf8.Valid(body) {
		// JSON text is UTF-8 (RFC 8259 §8.1); a decoder would quietly turn
		// the bad bytes into U+FFFD and call the document valid.
		c.JSON(http.StatusOK, gin.H{"schema": name, "valid": false, "violations": []sandbox.Violation{{Path: "", Message: "is not valid UTF-8 (JSON text must be, RFC 8259 §8.1)"}}})
		return nil
	}
	violations, err := a.Schemas.ValidateJSON(name, body)
	if err != nil {
		return err
	}
	if violations == nil {
		violations = []sandbox.Violation{}
	}
	c.JSON(http.StatusOK, gin.H{"schema": name, "valid": len(violations) == 0, "violations": violations})
	return nil
}
