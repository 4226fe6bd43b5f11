package wxpayv3

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// certificateAD is the associated data of an encrypted certificate
// (SOURCES.md §6).
const certificateAD = "certificate"

// CertificatesResponse is the body of GET /v3/certificates.
type CertificatesResponse struct {
	Data []Certificate `json:"data"`
}

// Certificate is one platform certificate, encrypted under the merchant's
// API v3 key.
type Certificate struct {
	SerialNo           string            `json:"serial_no"`
	EffectiveTime      string            `json:"effective_time"`
	ExpireTime         string            `json:"expire_time"`
	EncryptCertificate EncryptedResource `json:"encrypt_certificate"`
}

// EncryptedResource is an AEAD_AES_256_GCM ciphertext as v3 carries it in
// certificates and notifications.
type EncryptedResource struct {
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	Nonce          string `json:"nonce"`
	AssociatedData string `json:"associated_data"`
	OriginalType   string `json:"original_type,omitempty"`
}

// HandleCertificates handles "GET /v3/certificates": the merchant's
// platform certificate, its PEM encrypted with AES-256-GCM under the API v3
// key with associated_data "certificate" (SOURCES.md §6), as the SDK's
// certificate downloader expects. Mount it in a group with Middleware.
func (a *API) HandleCertificates(c *gin.Context) error {
	m := Merchant(c)
	keys := a.keys.get(m)
	if keys.certErr != nil {
		return &sandbox.Error{Code: sandbox.CodeInternal, Message: "the platform certificate of merchant " + m.MchID + " does not parse", Err: keys.certErr}
	}
	enc, err := encrypt(m.APIv3Key, certificateAD, []byte(m.PlatformCertificatePEM))
	if err != nil {
		return err
	}
	return a.JSON(c, http.StatusOK, CertificatesResponse{Data: []Certificate{{
		SerialNo:           m.PlatformSerialNo,
		EffectiveTime:      FormatTime(keys.cert.NotBefore),
		ExpireTime:         FormatTime(keys.cert.NotAfter),
		EncryptCertificate: enc,
	}}})
}

// encrypt seals plaintext with a fresh 12-character nonce.
func encrypt(apiV3Key, associatedData string, plaintext []byte) (EncryptedResource, error) {
	nonce := wxsign.NonceStr(12)
	ct, err := wxsign.EncryptAESGCM(apiV3Key, nonce, associatedData, plaintext)
	if err != nil {
		// A merchant whose API v3 key is not 32 bytes cannot decrypt
		// anything: say so rather than send garbage.
		e := sandbox.AsError(err)
		return EncryptedResource{}, &sandbox.Error{Code: sandbox.CodeInternal, Message: "encrypt with the API v3 key: " + e.Message, Err: err}
	}
	return EncryptedResource{Algorithm: wxsign.AlgorithmAESGCM, Ciphertext: ct, Nonce: nonce, AssociatedData: associatedData}, nil
}
