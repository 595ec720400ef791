package sqlite_test

import (
	"database/sql"
	"testing"

	"github.com/rampart-iot/rampart/internal/store/sqlite"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, storetest.OpenSQLite)
}

func TestMigrations(t *testing.T) {
	path := storetest.SQLiteDSN(t)
	storetest.RunMigrations(t, "sqlite", path, func(t *testing.T) {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUpgrade(t *testing.T) {
	storetest.RunUpgrade(t, "sqlite", "sqlite", storetest.SQLiteDSN(t), sqlite.Dialect)
}

func TestUpgradeFrom2(t *testing.T) {
	storetest.RunUpgradeFrom2(t, "sqlite", "sqlite", storetest.SQLiteDSN(t), sqlite.Dialect)
}

func TestWebhookUpgrade(t *testing.T) {
	storetest.RunWebhookUpgrade(t, "sqlite", "sqlite", storetest.SQLiteDSN(t), sqlite.Dialect)
}

func TestFrozenMigrations(t *testing.T) {
	storetest.RunFrozenMigrations(t, sqlite.Dialect.Migrations, map[string]string{
		"0001_init.sql":                    "7a4af661a8e28742baf0866161719d5b3b047e301c1e8a19c9c96470ce6f8c03",
		"0002_attestation.sql":             "a13d3565147e2aedcb0d608bd1be034a455e9c3ac02ddf0d890a43a17151614b",
		"0003_updates.sql":                 "4286fd7d31fe3240e02a6c76e22b5f900a67b10a39578d9d3403615a12f80304",
		"0004_checkin.sql":                 "733928c3ec398c67dd45a417a8d857a33d5e62b8110964cf0a6750e282b457ff",
		"0005_reports.sql":                 "447efed37dda8af8feaac8dc45c005774fd7486a3cf20c6798546f5550b61a7b",
		"0006_feeds.sql":                   "c295995b28ef8113aff09185d747c1d41bdb5b61ff9ec3d0dc481a6ace8e46be",
		"0007_rollouts.sql":                "db874cb6e1922372f89968b797b703565a7dd8f6b0a5db2cfb5d56ae4b8cf386",
		"0008_webhooks.sql":                "e3bd68ffc2ba4642df6475ae0ac794599165158021f2ba88b0fced8acdedd8b9",
		"0009_console.sql":                 "9e694dda97071a204a77f956c97294922a64ef065bfc04c7fc1059f383a130c6",
		"0010_device_hours.sql":            "7967c6ec994c9eeb8102c0c0d9ed57731ad9b9714fe4485f23f01fbf8d7ca00e",
		"0011_board_presses.sql":           "abe7bfb50a18691bd3536b25e935e0140a16ee65daddce21c02e33b8973820a8",
		"0012_security_versions.sql":       "bd94b72992ef8a1a46f51e6a2c87348d13e5b2a7e7ec3b900c48826472cd07ef",
		"0013_policy_generation.sql":       "7ca671d5507000f6e5728f39960239b564f948310b281efe87aad90d9cbf6f86",
		"0014_webhook_rotation.sql":        "5021e8f85f98cd8df3f1f2997be893c8dc9fc330e5b9422f70f8959d2e7de6dc",
		"0015_webhook_failure_counted.sql": "0da26c8e46b59495ca5b1baf70cdab832a21a016e1d2f77649f2a050e15cea60",
	})
}

func BenchmarkListDevices(b *testing.B) {
	storetest.BenchmarkListDevices(b, storetest.Open(b, "sqlite", storetest.SQLiteDSN(b)))
}

func BenchmarkAttestationWrite(b *testing.B) {
	storetest.BenchmarkAttestationWrite(b, storetest.Open(b, "sqlite", storetest.SQLiteDSN(b)))
}

func BenchmarkClaimDevice(b *testing.B) {
	storetest.BenchmarkClaimDevice(b, storetest.Open(b, "sqlite", storetest.SQLiteDSN(b)))
}
