package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// Run runs the conformance suite against the backend that open opens: every store method,
// with its negative cases, transactions and concurrency. open must return a new, empty store
// each time it is called, closed when its test ends; the subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Tenants", testTenants},
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"Roles", testRoles},
		{"ListTenantsForUser", testListTenantsForUser},
		{"Products", testProducts},
		{"UpdateProduct", testUpdateProduct},
		{"DeleteProduct", testDeleteProduct},
		{"DeviceGroups", testDeviceGroups},
		{"UpdateDeviceGroup", testUpdateDeviceGroup},
		{"DeleteDeviceGroup", testDeleteDeviceGroup},
		{"ClaimDevice", testClaimDevice},
		{"SetDeviceGroup", testSetDeviceGroup},
		{"ListDevices", testListDevices},
		{"DeviceBytes", testDeviceBytes},
		{"Audit", testAudit},
		{"AuditPaging", testAuditPaging},
		{"LimitClamping", testLimitClamping},
		{"Times", testTimes},
		{"UpdateCommits", testUpdateCommits},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"UpdateRollsBackOnConflict", testUpdateRollsBackOnConflict},
		{"UpdateRollsBackOnPanic", testUpdateRollsBackOnPanic},
		{"UpdateContinuesAfterError", testUpdateContinuesAfterError},
		{"UpdateEveryMethod", testUpdateEveryMethod},
		{"ConcurrentCreates", testConcurrentCreates},
		{"ConcurrentSameName", testConcurrentSameName},
		{"ConcurrentClaims", testConcurrentClaims},
		{"ConcurrentClaimsSameTenant", testConcurrentClaimsSameTenant},
		{"ConcurrentReadModifyWrite", testConcurrentReadModifyWrite},
		{"ConcurrentCrossedUpdates", testConcurrentCrossedUpdates},
		{"GetDeviceByID", testGetDeviceByID},
		{"ClaimIgnoresAttestationFields", testClaimIgnoresAttestationFields},
		{"SetDeviceDisabled", testSetDeviceDisabled},
		{"SetDeviceAKActivated", testSetDeviceAKActivated},
		{"RaiseDeviceSecurityCounter", testRaiseDeviceSecurityCounter},
		{"RecordAttestation", testRecordAttestation},
		{"ListAttestations", testListAttestations},
		{"AttestationHistoryOutlivesGroups", testAttestationHistoryOutlivesGroups},
		{"Nonces", testNonces},
		{"DeleteExpiredNonces", testDeleteExpiredNonces},
		{"ConcurrentCreateNonce", testConcurrentCreateNonce},
		{"OSReleases", testOSReleases},
		{"OSReleaseFeeds", testOSReleaseFeeds},
		{"PolicyGeneration", testPolicyGeneration},
		{"CACertificates", testCACertificates},
		{"UpdateCACertificate", testUpdateCACertificate},
		{"DeviceGroupCertLifetime", testDeviceGroupCertLifetime},
		{"UpdateRollsBackAttestation", testUpdateRollsBackAttestation},
		{"Images", testImages},
		{"ComponentOwnership", testComponentOwnership},
		{"ListImages", testListImages},
		{"ConcurrentComponentClaims", testConcurrentComponentClaims},
		{"Deployments", testDeployments},
		{"ListDeployments", testListDeployments},
		{"DeleteDeployedGroup", testDeleteDeployedGroup},
		{"SigningKeys", testSigningKeys},
		{"UpdateRollsBackUpdates", testUpdateRollsBackUpdates},
		{"DeviceReports", testDeviceReports},
		{"DeviceHours", testDeviceHours},
		{"BoardPresses", testBoardPresses},
		{"TUFMetadata", testTUFMetadata},
		{"Rollouts", testRollouts},
		{"ListTUFExpiring", testListTUFExpiring},
		{"ErrorReports", testErrorReports},
		{"ListErrorReports", testListErrorReports},
		{"ErrorBuckets", testErrorBuckets},
		{"DeleteErrorReports", testDeleteErrorReports},
		{"UpdateRollsBackReports", testUpdateRollsBackReports},
		{"Webhooks", testWebhooks},
		{"ConcurrentWebhookClaims", testConcurrentWebhookClaims},
		{"WebhookSecretsAndHealth", testWebhookSecretsAndHealth},
		{"HasErrorBucket", testHasErrorBucket},
		{"UserPasswords", testUserPasswords},
		{"ConsoleSessions", testConsoleSessions},
		{"ErrorReportsByBin", testErrorReportsByBin},
		{"ImagePackageReferenced", testImagePackageReferenced},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// base is the time the tests' records are created at. It is not in UTC and has nanoseconds,
// so that every round trip checks that times come back in UTC, truncated to microseconds.
var base = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*60*60))

// at returns the time n minutes after base.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }

// stored returns what a store returns for t.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

// norm returns v, a record or slice of records, as a store returns it: times in UTC to the
// microsecond, and empty byte slices and maps nil.
func norm[T any](v T) T {
	normValue(reflect.ValueOf(&v).Elem())
	return v
}

var timeType = reflect.TypeFor[time.Time]()

func normValue(v reflect.Value) {
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(stored(v.Interface().(time.Time))))
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			normValue(v.Field(i))
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			normValue(v.Index(i))
		}
	case v.Kind() == reflect.Map && v.Len() == 0:
		v.Set(reflect.Zero(v.Type()))
	}
}

// must fails the test if err is not nil.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// isErr fails the test unless err wraps target and says more than target does.
func isErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
	if err.Error() == target.Error() {
		t.Errorf("error %q does not say which record", err)
	}
}

// eq fails the test unless got and want are deeply equal.
func eq[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// keys returns the key of each item.
func keys[T any](items []T, key func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, x := range items {
		out = append(out, key(x))
	}
	return out
}

func tenantID(x store.Tenant) string           { return x.ID }
func tokenID(x store.Token) string             { return x.ID }
func roleUserID(x store.RoleAssignment) string { return x.UserID }
func productID(x store.Product) string         { return x.ID }
func groupID(x store.DeviceGroup) string       { return x.ID }
func deviceID(x store.Device) string           { return x.ID }
func auditSeq(x store.AuditEntry) string       { return fmt.Sprint(x.Seq) }
func attestationID(x store.Attestation) string { return x.ID }
func releaseID(x store.OSRelease) string       { return x.ID }
func caID(x store.CACertificate) string        { return x.ID }
func sorted(ids ...string) []string            { return slices.Sorted(slices.Values(ids)) }

// pageAll lists every item by pages of limit items, checks that only the last page is short
// and only the last page has an empty Next, and returns the keys in the order listed.
func pageAll[T any](t *testing.T, limit int, list func(store.ListOptions) (store.Page[T], error), key func(T) string) []string {
	t.Helper()
	all := []string{}
	opt := store.ListOptions{Limit: limit}
	for range 10000 {
		p, err := list(opt)
		must(t, err)
		all = append(all, keys(p.Items, key)...)
		if p.Next == "" {
			if len(p.Items) > limit {
				t.Fatalf("last page has %d items, limit %d", len(p.Items), limit)
			}
			return all
		}
		if len(p.Items) != limit {
			t.Fatalf("page with a Next has %d items, limit %d", len(p.Items), limit)
		}
		opt.After = p.Next
	}
	t.Fatal("paging does not end")
	return nil
}

// deviceIDOf returns the ID of device n: a lowercase hex SHA-256, as real device IDs are.
func deviceIDOf(n int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "device %d", n))
	return hex.EncodeToString(sum[:])
}
