package sandbox

import (
	"context"
	"log/slog"
)

// Merchants looks merchants up from memory (merchant.Directory).
type Merchants interface {
	Get(mchid string) (*Merchant, bool)
	ByAppID(appid string) (*Merchant, bool)
	ByPCloudAppID(appid string) (*Merchant, bool)
	List() []*Merchant
	// TakeAPIFault uses up one call of the merchant's first API fault that
	// applies to a call and returns it as it was, or nil when none does.
	TakeAPIFault(ctx context.Context, mchid, method, urlPath string) (*APIFault, error)
}

// Deps is what every product package is built from; app.New fills it.
type Deps struct {
	Store     Store
	Clock     *Clock
	Merchants Merchants
	Scenarios Scenarios
	Validator Validator
	Journal   Journal
	// NotifyTargets checks notify_url at create time (the notification
	// worker).
	NotifyTargets NotifyTargets
	Logger        *slog.Logger
}
