package payscore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv3"
)

const (
	// originalType and associatedData of the pay-score resources: real
	// traffic carries "payscore" in both (SOURCES.md §1).
	originalType   = "payscore"
	associatedData = "payscore"
)

// summary is the event's summary: "确认订单" is the documented example
// (SOURCES.md §1); the paid one is inferred [I].
func summary(event string) string {
	if event == EventUserPaid {
		return "支付成功"
	}
	return "确认订单"
}

// Scenario notification faults the product applies (scenario.schema.json
// notify.faults).
const (
	faultBadSignature = "bad_signature"
	faultDuplicate    = "duplicate"
	faultDrop         = "drop"
	// faultOutOfOrder: once PAYSCORE.USER_PAID is acknowledged, the
	// order's PAYSCORE.USER_CONFIRM arrives again, stale.
	faultOutOfOrder = "out_of_order"
	// faultLate: notifications go out lateDelay after their event (or the
	// scenario's longer notify.delay).
	faultLate = "late"
)

// lateDelay is how late a "late" notification is when the scenario names
// no longer notify.delay [I], as P云's are.
const lateDelay = time.Minute

// BuildNotify builds one attempt of a PAYSCORE.* notification: the v3
// envelope, the order encrypted under the API v3 key, signed headers.
func (p *Product) BuildNotify(ctx context.Context, m *sandbox.Merchant, n *sandbox.Notification) (*sandbox.OutboundRequest, error) {
	return p.v3.BuildNotify(ctx, m, n)
}

// Acknowledged is 200 or 204 (SOURCES.md §1).
func (p *Product) Acknowledged(status int, body []byte) bool {
	return wxpayv3.Acknowledged(status, body)
}

// Schedule is v3's retry schedule (SOURCES.md §1).
func (p *Product) Schedule() []time.Duration { return wxpayv3.Schedule() }

// Faults are those a pay-score notification plays.
func (p *Product) Faults() []string {
	return []string{faultBadSignature, faultDuplicate, faultDrop, faultOutOfOrder, faultLate}
}

// notification returns the notification of event about the order as v
// shows it at at, shaped by the scenario: delay, faults, failures.
func (p *Product) notification(o *order, v *view, event string, at time.Time, sc *sandbox.Scenario) (*sandbox.Notification, error) {
	payload, err := eventPayload(wxpayv3.NewEvent(at, event, summary(event), originalType, associatedData, nil), v)
	if err != nil {
		return nil, err
	}
	n := &sandbox.Notification{
		ID: httpapi.NewID("ntf_"), MchID: o.MchID, Product: sandbox.ProductPayScore, Event: event, Ref: o.OutOrderNo,
		URL: o.NotifyURL, Payload: payload, State: sandbox.NotifyPending, DueAt: at.Add(notifyDelay(sc)),
		FailNext: sc.Notify.FailNext,
		Faults: sandbox.Faults{
			BadSignature: sc.Notify.HasFault(faultBadSignature),
			Duplicate:    sc.Notify.HasFault(faultDuplicate),
		},
	}
	if sc.Notify.HasFault(faultDrop) {
		n.State = sandbox.NotifyDropped // listed by the admin API, never sent
	}
	return n, nil
}

// notifyDelay is how long after its event a notification goes out.
func notifyDelay(sc *sandbox.Scenario) time.Duration {
	if sc.Notify.HasFault(faultLate) {
		return max(sc.Notify.Delay.D(), lateDelay)
	}
	return sc.Notify.Delay.D()
}

func eventPayload(ev wxpayv3.Event, v *view) (json.RawMessage, error) {
	res, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	ev.Resource = res
	return json.Marshal(ev)
}

// notifyPaid queues the PAYSCORE.USER_PAID notification of the deduction
// scheduled on o, or brings the one already waiting up to date (a modify
// lowered the amount, a pay brought the deduction forward).
func (p *Product) notifyPaid(ctx context.Context, o *order, b *sandbox.Batch) error {
	at := o.Sandbox.PaidAt
	paid := *o
	col := *o.Collection
	paid.Collection = &col
	paid.advance(at)
	sc := p.scenario(o.Sandbox.Scenario)
	if n, err := p.waiting(ctx, o); err != nil || n != nil {
		if err != nil {
			return err
		}
		var ev wxpayv3.Event
		if err := json.Unmarshal(n.Payload, &ev); err != nil {
			return err
		}
		ev.CreateTime = wxpayv3.FormatTime(at)
		if n.Payload, err = eventPayload(ev, paid.full()); err != nil {
			return err
		}
		n.DueAt = at.Add(notifyDelay(sc))
		b.Notifications = append(b.Notifications, n)
		return nil
	}
	n, err := p.notification(o, paid.full(), EventUserPaid, at, sc)
	if err != nil {
		return err
	}
	o.Sandbox.PaidNotify = n.ID
	b.Notifications = append(b.Notifications, n)
	if sc.Notify.HasFault(faultOutOfOrder) {
		if err := p.outOfOrder(ctx, o, n); err != nil {
			return err
		}
	}
	return nil
}

// outOfOrder makes the PAYSCORE.USER_PAID notification n come back, once
// acknowledged, as the order's stale PAYSCORE.USER_CONFIRM: the same
// event, id included, as a late retry of it would be. It takes the place
// of the duplicate fault on n, so that n stays the one row cancel and sync
// drop.
func (p *Product) outOfOrder(ctx context.Context, o *order, n *sandbox.Notification) error {
	ns, err := p.d.Store.ListNotifications(ctx, sandbox.NotificationFilter{MchID: o.MchID, Product: sandbox.ProductPayScore, Ref: o.OutOrderNo})
	if err != nil {
		return err
	}
	var ev wxpayv3.Event
	for _, c := range ns {
		if c.Event != EventUserConfirm {
			continue
		}
		ev.Stale = &wxpayv3.Event{}
		if err := json.Unmarshal(c.Payload, ev.Stale); err != nil {
			return err
		}
		break
	}
	if ev.Stale == nil {
		return nil // never confirmed: nothing stale to send
	}
	stale := ev.Stale
	if err := json.Unmarshal(n.Payload, &ev); err != nil {
		return err
	}
	ev.Stale = stale
	if n.Payload, err = json.Marshal(ev); err != nil {
		return err
	}
	n.Faults.Duplicate = true
	return nil
}

// dropPaid drops the PAYSCORE.USER_PAID notification waiting for a
// deduction that will no longer happen (cancel, sync).
func (p *Product) dropPaid(ctx context.Context, o *order, b *sandbox.Batch) error {
	n, err := p.waiting(ctx, o)
	if err != nil || n == nil {
		return err
	}
	n.State = sandbox.NotifyDropped
	b.Notifications = append(b.Notifications, n)
	o.Sandbox.PaidNotify = ""
	return nil
}

// waiting returns the order's PAYSCORE.USER_PAID notification when it has
// not been sent yet (pending with no attempt, or held), nil otherwise.
func (p *Product) waiting(ctx context.Context, o *order) (*sandbox.Notification, error) {
	if o.Sandbox.PaidNotify == "" {
		return nil, nil
	}
	n, err := p.d.Store.GetNotification(ctx, o.Sandbox.PaidNotify)
	if sandbox.IsCode(err, sandbox.CodeNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if (n.State == sandbox.NotifyPending || n.State == sandbox.NotifyHeld) && n.Attempts == 0 {
		return n, nil
	}
	return nil, nil
}
