// Package wxpayv3 is the WeChat Pay API v3 protocol layer every v3 product
// shares (pay score now, the vehicle endpoints later): it authenticates the
// merchant's Authorization header, signs every 2xx answer with the
// platform key, renders errors in v3's {code, message, detail} shape, serves
// GET /v3/certificates, and builds encrypted, signed notifications. It knows
// nothing of any product; wxsign holds the cryptography it applies.
//
// Two clocks meet here. Signature timestamps (the request's, and the
// Wechatpay-Timestamp of answers and notifications) are compared by the
// merchant's SDK with its own wall clock, which the sandbox cannot move, so
// they use the wall clock; everything a product decides (expiry, state,
// create_time) uses the merchant's sandbox clock.
package wxpayv3
