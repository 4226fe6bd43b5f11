package testkit_test

import (
	"context"
	"fmt"
	"log"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// A whole 支付分 (Pay Score) flow against an in-process sandbox: the
// merchant's wechatpay-go client through Transport, the mini-program's
// wx.openBusinessView through Jump and Return, the notifications through a
// Receiver that verifies and decrypts them.
func Example_payScore() {
	ctx := context.Background()
	sb, err := testkit.Run(ctx) // in a test: testkit.Start(t)
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		log.Fatal(err)
	}
	recv, err := m.NewReceiver(ctx) // in a test: m.Receiver(t)
	if err != nil {
		log.Fatal(err)
	}
	defer recv.Close()

	seen, err := payScoreFlow(ctx, sb, m, recv, "EXAMPLE0001")
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range seen {
		fmt.Println(line)
	}
	// Output:
	// created: CREATED
	// jump: openBusinessView:ok
	// back on scene 1038 with a query_id: true
	// notified PAYSCORE.USER_CONFIRM: DOING/USER_CONFIRM
	// completed: DOING/MCH_COMPLETE
	// notified PAYSCORE.USER_PAID: DONE collection USER_PAID 1500
	// queried: DONE collection USER_PAID 1500
}

// A P云 half-screen payment against an in-process sandbox: trade-prepare
// with the merchant's own form client through Transport,
// wx.openEmbeddedMiniProgram through Jump and Return, the trade-notify
// through a Receiver that checks its MD5 sign.
func Example_embedPay() {
	ctx := context.Background()
	sb, err := testkit.Run(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		log.Fatal(err)
	}
	recv, err := m.NewReceiver(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer recv.Close()

	seen, err := pcloudFlow(ctx, sb, m, recv, "EXAMPLE-P1", "100")
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range seen {
		fmt.Println(line)
	}
	// Output:
	// prepared: a pay_id of 24 digits
	// jump: openEmbeddedMiniProgram:ok (embedpay.paid)
	// back on scene 1038, status 1
	// notified: pay_order EXAMPLE-P1 status 1 value 100
	// queried: status 1
}
