package console

import (
	"net/http"
	"net/url"

	"github.com/rampart-iot/rampart/internal/store"
)

const auditPage = 50

type auditView struct {
	Resource string
	Entries  []store.AuditEntry
	NextURL  string
}

// audit shows the tenant's audit log newest first, optionally of one resource.
func (h *Handler) audit(c *call) error {
	after, err := c.query("after")
	if err != nil {
		return err
	}
	resource, err := c.query("resource")
	if err != nil {
		return err
	}
	page, err := h.m.ListAudit(c.r.Context(), c.p, c.tenant.ID, store.AuditFilter{ResourceID: resource}, store.ListOptions{After: after, Limit: auditPage})
	if err != nil {
		return err
	}
	v := auditView{Resource: resource, Entries: page.Items}
	if page.Next != "" {
		q := url.Values{"after": {page.Next}}
		if resource != "" {
			q.Set("resource", resource)
		}
		v.NextURL = c.tenantPath("audit") + "?" + q.Encode()
	}
	vw := h.view(c, "Audit log", "audit")
	vw.Data = v
	h.render(c.w, c.r, http.StatusOK, "audit", vw)
	return nil
}
