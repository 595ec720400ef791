package console

import (
	"net/http"
	"net/url"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// The members page: who holds which role in the tenant (every role reads it) and, for its
// Administrators, the forms that add a user with a role, change a role and remove a member
// (manage.AddRole and DeleteRole, as the API's /roles, so the rule that the tenant keeps an
// Administrator is manage's), and the tenant's API tokens.

const membersPage = 100

var roleNames = []string{string(store.RoleAdministrator), string(store.RoleContributor), string(store.RoleReader)}

type membersView struct {
	Members     []store.RoleAssignment
	NextURL     string
	CanManage   bool
	Roles       []string
	Add         *form
	Change      *form // a row's change or removal, refused
	Tokens      []store.Token
	TokensNext  string
	CanTokens   bool
	UserNames   map[string]string
	NewToken    *form
	Lifetimes   []struct{ Value, Label string }
	SessionUser string
	Now         time.Time
}

// membersForms are the members page's forms as posted; nil for fresh ones.
type membersForms struct{ add, change, token *form }

func (h *Handler) members(c *call) error { return h.showMembers(c, http.StatusOK, membersForms{}) }

func (h *Handler) showMembers(c *call, status int, fs membersForms) error {
	ctx := c.r.Context()
	after, err := c.query("after")
	if err != nil {
		return err
	}
	page, err := h.m.ListRoles(ctx, c.p, c.tenant.ID, store.ListOptions{After: after, Limit: membersPage})
	if err != nil {
		return err
	}
	v := membersView{Members: page.Items, CanManage: c.can(authz.RoleAdd), Roles: roleNames, Add: fs.add, Change: fs.change,
		CanTokens: c.can(authz.TokenRevoke), NewToken: fs.token, Lifetimes: tokenLifetimes, SessionUser: c.p.UserID,
		UserNames: map[string]string{}, Now: h.now()}
	for _, m := range page.Items {
		v.UserNames[m.UserID] = m.UserName
	}
	if v.Add == nil {
		v.Add = &form{Values: map[string]string{"role": string(store.RoleReader)}}
	}
	if v.NewToken == nil {
		v.NewToken = &form{Values: map[string]string{}}
	}
	if page.Next != "" {
		v.NextURL = c.tenantPath("members") + "?" + url.Values{"after": {page.Next}}.Encode()
	}
	if v.CanTokens {
		tafter, err := c.query("tokens_after")
		if err != nil {
			return err
		}
		tp, err := h.m.ListTenantTokens(ctx, c.p, c.tenant.ID, store.ListOptions{After: tafter, Limit: tokensPage})
		if err != nil {
			return err
		}
		v.Tokens = tp.Items
		if tp.Next != "" {
			v.TokensNext = c.tenantPath("members") + "?" + url.Values{"tokens_after": {tp.Next}}.Encode() + "#tokens-h"
		}
	}
	vw := h.view(c, "Members", "members")
	vw.Data = v
	h.render(c.w, c.r, status, "members", vw)
	return nil
}

// addMember gives a user (new or existing) a role in the tenant.
func (h *Handler) addMember(c *call) error {
	f := newForm(c, "user", "role")
	if _, err := h.m.AddRole(c.r.Context(), c.p, c.tenant.ID, v1.RoleAdd{User: f.V("user"), Role: f.V("role")}); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showMembers(c, status, membersForms{add: f})
	}
	c.redirect(c.tenantPath("members"))
	return nil
}

// changeRole changes a member's role (a row's form); a refusal, such as demoting the last
// Administrator, is shown above the members.
func (h *Handler) changeRole(c *call) error {
	f := &form{Values: map[string]string{}} // a row's form: every problem is shown above the members
	req := v1.RoleAdd{User: c.r.PostForm.Get("user"), Role: c.r.PostForm.Get("role")}
	if _, err := h.m.AddRole(c.r.Context(), c.p, c.tenant.ID, req); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showMembers(c, status, membersForms{change: f})
	}
	c.redirect(c.tenantPath("members"))
	return nil
}

// removeMember removes a member's role in the tenant; manage refuses to remove the last
// Administrator, which is shown above the members.
func (h *Handler) removeMember(c *call) error {
	f := &form{Values: map[string]string{}}
	if err := h.m.DeleteRole(c.r.Context(), c.p, c.tenant.ID, c.r.PostForm.Get("user")); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showMembers(c, status, membersForms{change: f})
	}
	c.redirect(c.tenantPath("members"))
	return nil
}
