package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// BenchmarkListDevices measures listing a page of 100 devices of a product, from a tenant of
// 1000 devices in two products: the ceiling for listing devices through the API.
func BenchmarkListDevices(b *testing.B, s store.Store) {
	ctx := context.Background()
	seedBench(b, s)
	for i := range 1000 {
		group := []string{"group-1", "group-2"}[i%2]
		if _, _, err := s.ClaimDevice(ctx, newDevice("tenant-a", group, i)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		p, err := s.ListDevices(ctx, "tenant-a", store.DeviceFilter{ProductID: "prod-1"}, store.ListOptions{Limit: 100})
		if err != nil || len(p.Items) != 100 {
			b.Fatalf("ListDevices: %d items, %v", len(p.Items), err)
		}
	}
}

// BenchmarkClaimDevice measures claiming a new device into a group: the ceiling for claiming
// through the API.
func BenchmarkClaimDevice(b *testing.B, s store.Store) {
	ctx := context.Background()
	seedBench(b, s)
	i := 0
	for b.Loop() {
		_, claimed, err := s.ClaimDevice(ctx, newDevice("tenant-a", "group-1", i))
		if err != nil || !claimed {
			b.Fatalf("ClaimDevice: claimed=%v, %v", claimed, err)
		}
		i++
	}
}

func seedBench(b *testing.B, s store.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		steps := []error{
			tx.CreateTenant(ctx, store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: at(0)}),
			tx.CreateProduct(ctx, newProduct("tenant-a", "prod-1", "Thermostat")),
			tx.CreateProduct(ctx, newProduct("tenant-a", "prod-2", "Doorbell")),
			tx.CreateDeviceGroup(ctx, newGroup("tenant-a", "prod-1", "group-1", "Field")),
			tx.CreateDeviceGroup(ctx, newGroup("tenant-a", "prod-2", "group-2", "Field")),
		}
		for _, err := range steps {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAttestationWrite measures the store's part of an attestation, what attestsvc's
// group commit writes for each: the nonce marked used and the attestation recorded, four
// attestations of different devices to a transaction as under load. One op is one attestation.
func BenchmarkAttestationWrite(b *testing.B, s store.Store) {
	ctx := context.Background()
	seedBench(b, s)
	const devices, perTx = 64, 4
	for i := range devices {
		if _, _, err := s.ClaimDevice(ctx, newDevice("tenant-a", "group-1", i)); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	for b.Loop() {
		if n%perTx != 0 {
			n++
			continue
		}
		err := s.Update(ctx, func(tx store.Tx) error {
			for j := range perTx {
				k := n + j
				dev := deviceIDOf(k % devices)
				if err := tx.CreateNonce(ctx, store.Nonce{Hash: hashOf(fmt.Sprint("bench nonce ", k)), DeviceID: dev,
					TenantID: "tenant-a", CreatedAt: at(k), ExpiresAt: at(k + 60)}); err != nil {
					return err
				}
				if err := tx.RecordAttestation(ctx, newAttestation("tenant-a", dev, k, store.AttestationPass)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
}
