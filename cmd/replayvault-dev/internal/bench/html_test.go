package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestWriteHTML renders the sample report: one self-contained page (no
// script, nothing fetched), with a well-formed SVG per plot holding one
// line per design and a point per step or replay.
func TestWriteHTML(t *testing.T) {
	r := sampleReport()
	for i, rate := range []float64{100, 200, 400, 800} {
		r.Ingest.Packer.Steps = append(r.Ingest.Packer.Steps, StepResult{OfferedPerS: rate, AckP99MS: 1900 + float64(i)*50, CPUPer1000: 2})
	}
	for i, rate := range []float64{100, 200, 400} {
		r.Ingest.Naive.Steps = append(r.Ingest.Naive.Steps, StepResult{OfferedPerS: rate, AckP99MS: 80 * float64(i+1), CPUPer1000: 2.5})
	}
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"<script", "src=", "href=\"http", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("page is not self-contained: has %q", bad)
		}
	}
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
	titles := []string{"Ack latency p99 against offered load", "CPU per 1,000 segments", "Read time against replay length", "Cost per million segments over retention"}
	if len(svgs) != len(titles) {
		t.Fatalf("%d plots, want %d", len(svgs), len(titles))
	}
	wantLines := []int{2, 2, 3, 2}
	wantPoints := []int{
		len(r.Ingest.Packer.Steps) + len(r.Ingest.Naive.Steps),
		len(r.Ingest.Packer.Steps) + len(r.Ingest.Naive.Steps),
		3 * len(r.Read.Rows),
		2 * 12,
	}
	for i, svg := range svgs {
		if !strings.Contains(svg, titles[i]) {
			t.Errorf("plot %d is not %q", i, titles[i])
		}
		dec := xml.NewDecoder(strings.NewReader(svg))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Errorf("plot %d is not well-formed SVG: %v", i, err)
				break
			}
		}
		if n := strings.Count(svg, `class="series"`); n != wantLines[i] {
			t.Errorf("plot %d: %d lines, want %d", i, n, wantLines[i])
		}
		if n := strings.Count(svg, "<circle"); n != wantPoints[i] {
			t.Errorf("plot %d: %d points, want %d", i, n, wantPoints[i])
		}
	}
	if !strings.Contains(page, "MISSED") && !strings.Contains(page, "missed") {
		t.Error("page does not show the missed target")
	}
}
