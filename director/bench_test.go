package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"google.golang.org/grpc"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// BenchmarkLabel100Slots labels a 100-slot vtl library with encryption,
// end to end through tapectl, director, catalog and storaged (each volume:
// key generated and committed, label, key loaded, read back, key-check
// block verified, key cleared, cartridge returned). One op is the whole
// library. Goal: ≤ 10 s.
func BenchmarkLabel100Slots(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := newWorld(b, worldOpts{slots: 100, drives: 2})
		b.StartTimer()
		out := w.ok("label storage=sd1 pool=Offsite slots=1-100 barcodes encrypt")
		b.StopTimer()
		if !strings.Contains(out, "100 of 100 slots labelled") {
			b.Fatalf("label: %s", out)
		}
		b.StartTimer()
	}
}

// BenchmarkGetVolumeKey measures storaged's key fetch over mutual TLS on
// one connection, as storaged sends it at mount (with the label it read:
// the catalog lookup with the ownership and label checks, the "fetched" key
// event insert), and reports the median and 99th percentile.
func BenchmarkGetVolumeKey(b *testing.B) {
	w := newWorld(b, worldOpts{slots: 2})
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	tc, err := tlsconf.Client(w.sdConf.TLS, tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}, "")
	if err != nil {
		b.Fatal(err)
	}
	conn, err := grpc.NewClient(w.dirConf.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewDirectorClient(conn)
	ctx := context.Background()
	v := w.volumes()[0]
	lbl := &pb.LabelView{Volume: "TW0001L6", Barcode: "TW0001L6", Encrypted: true, KekId: v.KEKID, KeyFingerprint: v.Key, Storage: "sd1", Pool: "Offsite"}
	if _, err := client.GetVolumeKey(ctx, &pb.GetVolumeKeyRequest{Volume: "TW0001L6", Label: lbl}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r, err := client.GetVolumeKey(ctx, &pb.GetVolumeKeyRequest{Volume: "TW0001L6", Drive: "drive0", Label: lbl})
		if err != nil || r.Key.GetFingerprint() != v.Key {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
