package postgres_test

import (
	"database/sql"
	"testing"

	"github.com/rampart-iot/rampart/internal/store/postgres"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.SkipWithoutPostgres(t)
	storetest.Run(t, storetest.OpenPostgres)
}

func TestMigrations(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	storetest.RunMigrations(t, "postgres", dsn, func(t *testing.T) {
		db, err := sql.Open("pgx", dsn)
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
	storetest.RunUpgrade(t, "postgres", "pgx", storetest.PostgresDSN(t), postgres.Dialect)
}

func TestUpgradeFrom2(t *testing.T) {
	storetest.RunUpgradeFrom2(t, "postgres", "pgx", storetest.PostgresDSN(t), postgres.Dialect)
}

func TestWebhookUpgrade(t *testing.T) {
	storetest.RunWebhookUpgrade(t, "postgres", "pgx", storetest.PostgresDSN(t), postgres.Dialect)
}

func TestFrozenMigrations(t *testing.T) {
	storetest.RunFrozenMigrations(t, postgres.Dialect.Migrations, map[string]string{
		"0001_init.sql":                    "ff469f206edb247107a6c4180d646ddadded304155e39ac7703b3c6f5b1c7b62",
		"0002_attestation.sql":             "ea7649a552ece5fa9fa478caf784015f8dd8e8d5272e81c172e9f253b1fa4688",
		"0003_updates.sql":                 "a9dedf90062fb668caaeffd2c88f3065b5a114621a29293d0847bf937c33f845",
		"0004_checkin.sql":                 "b74aad21d6194866c3be713ba0ca7defd3786fe1550d7a2bf4a4010d3ce7274f",
		"0005_reports.sql":                 "7d07c45b3c2de4832db0dd2f883b780abbe45c4843937e8671a27ab6f3c9aa10",
		"0006_feeds.sql":                   "2cb550b68ac51662e970133090913da5703184c1493f3163cb627906636ca89b",
		"0007_rollouts.sql":                "d0ac54085e32504d94077386503c545448e1377e63f303ca476ee0fa8ffb5029",
		"0008_webhooks.sql":                "8412ff38675b85d31227c802aec53b09339dba958aebb4c2d3ef548e29f4a32f",
		"0009_console.sql":                 "7d1b48ac2e88b63a6b20bd1d9e90e7805c0409db22c95a2842aaef4d4980fd25",
		"0010_device_hours.sql":            "2a41abd52ff7dfb62acc8834ba5ba491fc04a7fef90fad17354be99d85eb48da",
		"0011_board_presses.sql":           "847ac2b97a24365a2a2b455564201b5cd4e7ad09151a08edd319dba53441ae36",
		"0012_security_versions.sql":       "69a52dd4330dc6c04736933d7cce9ec9a7140771e0d52f6f4f5e41e51a8a0320",
		"0013_policy_generation.sql":       "2e182c922267be66d42e91c98fc659e838d32d8a9ecab0cd3928d35869521e0f",
		"0014_webhook_rotation.sql":        "995b368708c01a06ea8fb4768e95c877a5f1d68d55bb041fa00a12adb5186e2c",
		"0015_webhook_failure_counted.sql": "a77198e5be90a75131810304ec4af67c1e4a342f695d63c2143a3f230ea4c62e",
	})
}

func BenchmarkListDevices(b *testing.B) {
	storetest.BenchmarkListDevices(b, storetest.Open(b, "postgres", storetest.PostgresDSN(b)))
}

func BenchmarkClaimDevice(b *testing.B) {
	storetest.BenchmarkClaimDevice(b, storetest.Open(b, "postgres", storetest.PostgresDSN(b)))
}
