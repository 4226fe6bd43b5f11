package sandbox

import "log/slog"

// Merchants looks merchants up from memory (merchant.Directory).
type Merchants interface {
	Get(mchid string) (*Merchant, bool)
	ByAppID(appid string) (*Merchant, bool)
	ByPCloudAppID(appid string) (*Merchant, bool)
	List() []*Merchant
}

// Deps is what every product package is built from; app.New fills it.
type Deps struct {
	Store     Store
	Clock     *Clock
	Merchants Merchants
	Scenarios Scenarios
	Validator Validator
	Journal   Journal
	Logger    *slog.Logger
}
