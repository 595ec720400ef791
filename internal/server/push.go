package server

import (
	"context"
	"io"
	"log/slog"

	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/push"
	"github.com/rampart-iot/rampart/internal/push/pgpush"
	"github.com/rampart-iot/rampart/internal/serverconfig"
)

// startNotifier returns what tells devices of committed changes. On SQLite the service is one
// process, and the hub is enough. On PostgreSQL replicas may share the database, so a
// pgpush.Relay also tells the other replicas, and its listener, started here, runs until ctx
// ends.
func startNotifier(ctx context.Context, cfg serverconfig.Config, hub *push.Hub, log *slog.Logger, rnd io.Reader) (manage.Notifier, error) {
	if cfg.Store.Backend != "postgres" || cfg.Store.DSN == "" {
		return hub, nil
	}
	cc, err := pgpush.ParseDSN(cfg.Store.DSN)
	if err != nil {
		return nil, err
	}
	relay, err := pgpush.New(pgpush.Config{ConnConfig: cc, Hub: hub, Logger: log, Rand: rnd})
	if err != nil {
		return nil, err
	}
	go func() { _ = relay.Run(ctx) }()
	return relay, nil
}
