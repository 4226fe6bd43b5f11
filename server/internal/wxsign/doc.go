// Package wxsign holds every cryptographic rule of the simulated systems as
// pure functions: WeChat Pay API v2 signatures (MD5, HMAC-SHA256), API v3
// request and response signatures (SHA256withRSA), the v3 Authorization
// header, AEAD_AES_256_GCM resources, the requestPayment paySign, and the P云
// (4pyun) MD5 signature. Each rule is tested against the golden vectors of
// SOURCES.md and, for v3, against the official SDK (wechatpay-go).
//
// Every verification failure is a *sandbox.Error with CodeUnauthorized whose
// Diagnostics holds what the sandbox expected to be signed, secrets masked,
// so a merchant can diff it against their own string-to-sign.
package wxsign
