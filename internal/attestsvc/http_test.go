package attestsvc_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
)

type httpClient struct{ roots *x509.CertPool }

func (h *httpClient) get(url string) (int, error) {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.roots}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
