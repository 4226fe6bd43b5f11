package merchant

import (
	"context"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/m.db"
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	clock := sandbox.NewClock(1, nil)
	d, err := Load(ctx, st, clock)
	if err != nil {
		t.Fatal(err)
	}
	demo, ok := d.Get("1230000109")
	if !ok || demo.AppID == "" || demo.Token == "" {
		t.Fatalf("demo merchant: %+v", demo)
	}
	if m, ok := d.ByAppID(demo.AppID); !ok || m.MchID != demo.MchID {
		t.Fatal("lookup by appid")
	}
	if m, ok := d.ByPCloudAppID(demo.PCloudAppID); !ok || m.MchID != demo.MchID {
		t.Fatal("lookup by P云 app_id")
	}
	if id, ok := d.ByToken(demo.Token); !ok || id != demo.MchID {
		t.Fatal("lookup by token")
	}
	if _, err := d.Create(ctx, CreateRequest{MchID: demo.MchID}); !sandbox.IsCode(err, sandbox.CodeConflict) {
		t.Fatalf("duplicate mchid: got %v", err)
	}
	if _, err := d.Create(ctx, CreateRequest{MchID: "1900000009", AppID: demo.AppID}); !sandbox.IsCode(err, sandbox.CodeInvalid) {
		t.Fatalf("duplicate appid: got %v", err)
	}
	m2, err := d.Create(ctx, CreateRequest{MchID: "1900000009", NotifyHosts: []string{"127.0.0.1:9000"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AdvanceClock(ctx, m2.MchID, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	// Copy-on-write: a merchant handed out before an edit never changes.
	before, _ := d.Get(demo.MchID)
	if _, err := d.Update(ctx, demo.MchID, func(m *sandbox.Merchant) error {
		m.Active["embedpay"] = sandbox.ActiveScenario{ID: "embedpay.failed"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, changed := before.Active["embedpay"]; changed {
		t.Fatal("Update mutated a merchant already handed out")
	}
	st.Close()

	st2, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	clock2 := sandbox.NewClock(1, nil)
	d2, err := Load(ctx, st2, clock2)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(d2.List()); got != 2 {
		t.Fatalf("after reopening: %d merchants, want 2", got)
	}
	if got := clock2.Offset("1900000009"); got != 3*time.Hour {
		t.Fatalf("clock offset after reopening: %v", got)
	}
	again, _ := d2.Get(demo.MchID)
	if again.Active["embedpay"].ID != "embedpay.failed" || again.MerchantPrivateKeyPEM != demo.MerchantPrivateKeyPEM {
		t.Fatal("merchant not kept whole across a reopen")
	}
}
