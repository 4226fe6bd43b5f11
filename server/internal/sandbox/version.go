package sandbox

// APIVersion is the semantic version of the sandbox's HTTP surface (the
// simulated upstream routes, /miniprogram/v1 and /sandbox/v1) and of the Go
// testkit that drives it: a major for a change that breaks a caller, a
// minor for an addition, a patch for a fix. GET /version reports it, the
// OpenAPI document and the image label carry it, and CHANGELOG.md says what
// each one changed.
const APIVersion = "1.0.0"
