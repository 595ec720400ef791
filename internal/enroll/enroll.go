// Package enroll makes a device's enrollment record from its root of trust: the device ID, the
// public halves of the EK and AK, and the EK certificate when there is one. It reads only public
// keys; no secret leaves the root of trust.
package enroll

import (
	"context"
	"fmt"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/rot"
)

// Record builds and checks the enrollment record for r.
func Record(ctx context.Context, r rot.RootOfTrust, agentVersion string) (*enrollment.Record, error) {
	ek, ekCert, err := r.Endorsement(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the endorsement key: %w", err)
	}
	ak, err := r.AttestationKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the attestation key: %w", err)
	}
	if len(agentVersion) > enrollment.MaxAgentVersionSize {
		agentVersion = agentVersion[:enrollment.MaxAgentVersionSize]
	}
	rec := &enrollment.Record{
		Version:       enrollment.Version,
		DeviceID:      enrollment.DeviceID(ek),
		RootOfTrust:   r.Kind(),
		AgentVersion:  agentVersion,
		EKPublic:      ek,
		EKCertificate: ekCert,
		AKPublic:      ak,
	}
	if err := rec.Validate(); err != nil {
		return nil, fmt.Errorf("the root of trust produced an unusable record: %w", err)
	}
	return rec, nil
}
