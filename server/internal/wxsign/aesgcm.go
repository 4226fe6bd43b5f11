package wxsign

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"strconv"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// AEAD_AES_256_GCM as WeChat Pay v3 uses it for notification resources and
// downloaded certificates (SOURCES.md §1): the 32-byte APIv3 key, a 12-byte
// nonce used as its raw string bytes, the associated data as its bytes.
const (
	// AlgorithmAESGCM is the resource.algorithm value.
	AlgorithmAESGCM = "AEAD_AES_256_GCM"
	apiV3KeySize    = 32
	gcmNonceSize    = 12
)

// EncryptAESGCM encrypts plaintext as a v3 resource ciphertext:
// base64(ciphertext || 16-byte tag).
func EncryptAESGCM(apiV3Key, nonce, associatedData string, plaintext []byte) (string, error) {
	aead, err := newGCM(apiV3Key, nonce)
	if err != nil {
		return "", err
	}
	sealed := aead.Seal(make([]byte, 0, len(plaintext)+aead.Overhead()), []byte(nonce), plaintext, []byte(associatedData))
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// DecryptAESGCM decrypts a v3 resource ciphertext. A wrong key, nonce,
// associated data or a tampered ciphertext is a CodeInvalid *sandbox.Error.
func DecryptAESGCM(apiV3Key, nonce, associatedData, ciphertextB64 string) ([]byte, error) {
	aead, err := newGCM(apiV3Key, nonce)
	if err != nil {
		return nil, err
	}
	sealed, err := base64.StdEncoding.DecodeString(ciphertextB64)
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInvalid, Message: "ciphertext is not standard base64", Err: err}
	}
	plain, err := aead.Open(sealed[:0], []byte(nonce), sealed, []byte(associatedData))
	if err != nil {
		return nil, &sandbox.Error{
			Code:    sandbox.CodeInvalid,
			Message: "ciphertext does not decrypt: wrong APIv3 key, nonce or associated_data, or altered ciphertext",
			Err:     err,
		}
	}
	return plain, nil
}

// newGCM checks the sizes WeChat Pay fixes. The official SDK hands any AES
// key size to crypto/aes, so a 16-byte "APIv3 key" silently becomes
// AES-128 there; the sandbox refuses it, as WeChat only issues 32-byte keys.
func newGCM(apiV3Key, nonce string) (cipher.AEAD, error) {
	if len(apiV3Key) != apiV3KeySize {
		return nil, sandbox.Errorf(sandbox.CodeInvalid,
			"APIv3 key is %d bytes, %s needs %d", len(apiV3Key), AlgorithmAESGCM, apiV3KeySize)
	}
	if len(nonce) != gcmNonceSize {
		return nil, sandbox.Errorf(sandbox.CodeInvalid,
			"nonce %s is %d bytes, %s uses %d", strconv.Quote(nonce), len(nonce), AlgorithmAESGCM, gcmNonceSize)
	}
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "AES: " + err.Error(), Err: err}
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "GCM: " + err.Error(), Err: err}
	}
	return aead, nil
}
