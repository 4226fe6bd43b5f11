package e2e

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// demoMchID is the merchant that exists on first start (the mchid of
// WeChat's own docs).
const demoMchID = testkit.DemoMchID

// credentialFields are the fields of GET /sandbox/v1/merchants/{mchid}/credentials
// a merchant copies into its configuration; every one must be filled.
var credentialFields = []string{
	"mchid", "appid", "service_id",
	"merchant_serial_no", "merchant_private_key_pem", "merchant_certificate_pem",
	"api_v2_key", "api_v3_key",
	"platform_public_key_id", "platform_public_key_pem", "platform_serial_no", "platform_certificate_pem",
	"pcloud_app_id", "pcloud_app_secret", "pcloud_merchant",
}

type merchant struct {
	MchID string `json:"mchid"`
	Name  string `json:"name"`
	AppID string `json:"appid"`
}

// violation is one entry of a validation answer's "violations".
type violation struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// exchange is the part of a journal entry the tests look at.
type exchange struct {
	ID        int64  `json:"id"`
	RequestID string `json:"request_id"`
	Method    string `json:"method"`
	URL       string `json:"url"`
	Status    int    `json:"status"`
}

func credentials(tb testing.TB, s *Sandbox, mchid string) map[string]any {
	tb.Helper()
	var got map[string]any
	s.JSON(tb, http.MethodGet, "/sandbox/v1/merchants/"+mchid+"/credentials", nil, http.StatusOK, &got)
	return got
}

func merchants(tb testing.TB, s *Sandbox) []merchant {
	tb.Helper()
	var got struct {
		Merchants []merchant `json:"merchants"`
	}
	s.JSON(tb, http.MethodGet, "/sandbox/v1/merchants", nil, http.StatusOK, &got)
	return got.Merchants
}

func findMerchant(ms []merchant, mchid string) (merchant, bool) {
	i := slices.IndexFunc(ms, func(m merchant) bool { return m.MchID == mchid })
	if i < 0 {
		return merchant{}, false
	}
	return ms[i], true
}

func TestStartAndDemoCredentials(t *testing.T) {
	t.Parallel()
	s := startSandbox(t)

	var version struct {
		Version    string `json:"version"`
		APIVersion string `json:"api_version"`
	}
	s.JSON(t, http.MethodGet, "/version", nil, http.StatusOK, &version)
	if version.Version != e2eVersion {
		t.Errorf("version got %q, want %q (the -X main.version the suite built with)", version.Version, e2eVersion)
	}
	if version.APIVersion != testkit.Version {
		t.Errorf("api_version got %q, want the testkit's %q", version.APIVersion, testkit.Version)
	}
	s.JSON(t, http.MethodGet, "/healthz", nil, http.StatusOK, nil)
	// The image's HEALTHCHECK runs this; compose waits on it.
	if got := s.Exec(t, "/mpsandbox", "healthcheck"); got != 0 {
		t.Errorf("healthcheck exit code got %d, want 0", got)
	}

	demo, ok := findMerchant(merchants(t, s), demoMchID)
	if !ok {
		t.Fatalf("merchants: demo merchant %s missing", demoMchID)
	}
	creds := credentials(t, s, demoMchID)
	for _, f := range credentialFields {
		if v, _ := creds[f].(string); v == "" {
			t.Errorf("credentials %s: got %v, want a non-empty string", f, creds[f])
		}
	}
	if got := creds["appid"]; got != demo.AppID {
		t.Errorf("credentials appid got %v, want the merchant's %q", got, demo.AppID)
	}
	if t.Failed() {
		return
	}

	// The testkit parses every key and certificate; a merchant's SDK signs
	// with the key and names the certificate by its serial: the two must
	// belong together.
	m := s.merchant(t, demoMchID)
	if pub, ok := m.MerchantPrivateKey.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(m.MerchantCertificate.PublicKey) {
		t.Errorf("merchant certificate's public key does not match merchant_private_key_pem")
	}
	if got, want := m.MerchantSerialNo, fmt.Sprintf("%X", m.MerchantCertificate.SerialNumber); got != want {
		t.Errorf("merchant_serial_no got %v, want the certificate's serial %s", got, want)
	}
}

// The image says which version of the HTTP surface it serves.
func TestImageLabel(t *testing.T) {
	t.Parallel()
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		t.Fatal(err)
	}
	defer provider.Close()
	img, err := provider.Client().ImageInspect(context.Background(), testImage)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Config.Labels["org.opencontainers.image.version"]; got != testkit.Version {
		t.Errorf("org.opencontainers.image.version got %q, want %q", got, testkit.Version)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	s := startSandbox(t)

	var list struct {
		Schemas []string `json:"schemas"`
	}
	s.JSON(t, http.MethodGet, "/sandbox/v1/schemas", nil, http.StatusOK, &list)
	if !slices.Contains(list.Schemas, "miniprogram/call") {
		t.Fatalf("schemas got %v, want miniprogram/call among them", list.Schemas)
	}

	tests := []struct {
		name      string
		doc       string
		wantValid bool
		wantPaths []string // each must be among the violations
	}{
		{
			name:      "valid call",
			doc:       `{"caller":{"appId":"wx1234567890abcdef","platform":"ios"},"args":{"appId":"wxd8f3793ea3b935b8"}}`,
			wantValid: true,
		},
		{
			name:      "appId of the wrong type",
			doc:       `{"caller":{"appId":123},"args":{}}`,
			wantPaths: []string{"/caller/appId"},
		},
		{
			name:      "args not an object and appId wrong",
			doc:       `{"caller":{"appId":false},"args":"x"}`,
			wantPaths: []string{"/args", "/caller/appId"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				Valid      bool        `json:"valid"`
				Violations []violation `json:"violations"`
			}
			s.JSON(t, http.MethodPost, "/sandbox/v1/validate/miniprogram/call", []byte(tt.doc), http.StatusOK, &got)
			if got.Valid != tt.wantValid {
				t.Fatalf("valid got %v, want %v; violations %+v", got.Valid, tt.wantValid, got.Violations)
			}
			if tt.wantValid && len(got.Violations) != 0 {
				t.Errorf("violations got %+v, want none", got.Violations)
			}
			for _, want := range tt.wantPaths {
				i := slices.IndexFunc(got.Violations, func(v violation) bool { return v.Path == want })
				if i < 0 {
					t.Errorf("violations got %+v, want one at %q", got.Violations, want)
				} else if got.Violations[i].Message == "" {
					t.Errorf("violation at %q has no message", want)
				}
			}
		})
	}
}

func TestJournalStream(t *testing.T) {
	t.Parallel()
	s := startSandbox(t)
	demo, ok := findMerchant(merchants(t, s), demoMchID)
	if !ok {
		t.Fatalf("demo merchant %s missing", demoMchID)
	}

	stream := s.openStream(t, "/sandbox/v1/journal/stream")
	var call struct {
		ErrMsg     string      `json:"errMsg"`
		Violations []violation `json:"violations"`
	}
	// No such target mini-program: a failed jump (400, in the errMsg
	// dialect, with the violation), journalled like any other exchange.
	resp := s.JSON(t, http.MethodPost, "/miniprogram/v1/navigateToMiniProgram", map[string]any{
		"caller": map[string]any{"appId": demo.AppID},
		"args":   map[string]any{"appId": "wx0000000000000000"},
	}, http.StatusBadRequest, &call)
	if !strings.HasPrefix(call.ErrMsg, "navigateToMiniProgram:fail") {
		t.Errorf("errMsg got %q, want navigateToMiniProgram:fail …", call.ErrMsg)
	}
	if !slices.ContainsFunc(call.Violations, func(v violation) bool { return v.Path == "/args/appId" }) {
		t.Errorf("violations got %+v, want one at /args/appId", call.Violations)
	}
	reqID := resp.Header.Get("X-Request-Id")
	if reqID == "" {
		t.Fatalf("no X-Request-Id on the answer")
	}

	var ex exchange
	ev := stream.Next(t, "exchange", 10*time.Second, func(ev Event) bool {
		return json.Unmarshal([]byte(ev.Data), &ex) == nil && ex.RequestID == reqID
	})
	if got, want := ev.ID, fmt.Sprint(ex.ID); got != want {
		t.Errorf("event id got %q, want the exchange id %s", got, want)
	}
	if ex.Method != http.MethodPost || !strings.Contains(ex.URL, "/miniprogram/v1/navigateToMiniProgram") || ex.Status != resp.Status {
		t.Errorf("exchange got %s %s %d, want POST …/miniprogram/v1/navigateToMiniProgram %d", ex.Method, ex.URL, ex.Status, resp.Status)
	}

	// The same exchange is in the journal's query.
	var journal struct {
		Exchanges []exchange `json:"exchanges"`
	}
	s.JSON(t, http.MethodGet, "/sandbox/v1/journal?limit=50", nil, http.StatusOK, &journal)
	if !slices.ContainsFunc(journal.Exchanges, func(e exchange) bool { return e.RequestID == reqID }) {
		t.Errorf("journal: no exchange with request_id %q among %d", reqID, len(journal.Exchanges))
	}
}

func TestRestartKeepsMerchants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dataDir func(t *testing.T) string
	}{
		{name: "named volume", dataDir: func(*testing.T) string { return "" }},
		{name: "bind-mounted directory", dataDir: func(t *testing.T) string { return t.TempDir() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.dataDir(t)
			s := startSandbox(t, testkit.WithDataDir(dir))
			var created merchant
			s.JSON(t, http.MethodPost, "/sandbox/v1/merchants", map[string]any{"name": "e2e restart"}, http.StatusCreated, &created)
			if created.MchID == "" {
				t.Fatalf("created merchant has no mchid")
			}
			before := credentials(t, s, created.MchID)

			s.Restart(t)

			got, ok := findMerchant(merchants(t, s), created.MchID)
			if !ok {
				t.Fatalf("after restart: merchant %s missing", created.MchID)
			}
			if got != created {
				t.Errorf("after restart: merchant got %+v, want %+v", got, created)
			}
			after := credentials(t, s, created.MchID)
			for _, f := range credentialFields {
				if after[f] != before[f] {
					t.Errorf("after restart: credentials %s changed", f)
				}
			}
			if dir != "" {
				// The state is in the host directory, not in the container.
				entries, err := os.ReadDir(dir)
				if err != nil || len(entries) == 0 {
					t.Errorf("data dir %s: got %d entries (%v), want the store's files", dir, len(entries), err)
				}
			}
		})
	}
}

func TestAdminTokenOnPublicAddress(t *testing.T) {
	t.Parallel()
	const token = "e2e-admin-token"
	s := startSandbox(t, testkit.WithPublic(), testkit.WithAdminToken(token))

	tests := []struct {
		name       string
		auth       string
		wantStatus int
	}{
		{name: "no token", wantStatus: http.StatusUnauthorized},
		{name: "wrong token", auth: "Bearer not-" + token, wantStatus: http.StatusUnauthorized},
		{name: "token not as bearer", auth: token, wantStatus: http.StatusUnauthorized},
		{name: "bearer token", auth: "Bearer " + token, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := s.NewRequest(t, http.MethodGet, "/sandbox/v1/merchants", nil)
			req.Header.Del("Authorization")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp := s.Do(t, req)
			if resp.Status != tt.wantStatus {
				t.Fatalf("status got %d, want %d; body %s", resp.Status, tt.wantStatus, resp.Body)
			}
			if tt.wantStatus != http.StatusUnauthorized {
				return
			}
			var body struct {
				Error struct {
					Code      string `json:"code"`
					Message   string `json:"message"`
					RequestID string `json:"request_id"`
				} `json:"error"`
			}
			if err := json.Unmarshal(resp.Body, &body); err != nil {
				t.Fatalf("401 body %s: %v", resp.Body, err)
			}
			if body.Error.Code == "" || body.Error.Message == "" {
				t.Errorf("401 body got %s, want the house envelope with code and message", resp.Body)
			}
			if got, want := body.Error.RequestID, resp.Header.Get("X-Request-Id"); got == "" || got != want {
				t.Errorf("401 request_id got %q, want X-Request-Id %q", got, want)
			}
		})
	}
	// Health stays open: the image's HEALTHCHECK and orchestrators have no token.
	req := s.NewRequest(t, http.MethodGet, "/readyz", nil)
	req.Header.Del("Authorization")
	if resp := s.Do(t, req); resp.Status != http.StatusOK {
		t.Errorf("/readyz without token: status got %d, want 200", resp.Status)
	}
}
