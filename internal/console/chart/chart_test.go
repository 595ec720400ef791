package chart

import (
	"encoding/xml"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

// wellFormed parses an SVG document to its end and returns its character data.
func wellFormed(t testing.TB, svg string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var text strings.Builder
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			if depth == 0 && x.Name.Local != "svg" {
				t.Fatalf("root element %q, want svg", x.Name.Local)
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			text.Write(x)
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced elements (depth %d)", depth)
	}
	return text.String()
}

func TestScale(t *testing.T) {
	for _, tc := range []struct {
		top   float64
		max   float64
		ticks []float64
	}{
		{0, 1, []float64{0, 0.5, 1}},
		{1, 1, []float64{0, 0.5, 1}},
		{3, 5, []float64{0, 1, 2, 3, 4, 5}},
		{7, 10, []float64{0, 2, 4, 6, 8, 10}},
		{10, 10, []float64{0, 2, 4, 6, 8, 10}},
		{11, 20, []float64{0, 5, 10, 15, 20}},
		{180, 200, []float64{0, 50, 100, 150, 200}},
		{999_999, 1_000_000, []float64{0, 200_000, 400_000, 600_000, 800_000, 1_000_000}},
	} {
		m, ticks := Scale(tc.top)
		if m != tc.max || !slices.Equal(ticks, tc.ticks) {
			t.Errorf("Scale(%v) = %v %v, want %v %v", tc.top, m, ticks, tc.max, tc.ticks)
		}
		if m < tc.top {
			t.Errorf("Scale(%v): axis maximum %v is below the data", tc.top, m)
		}
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.MaxFloat64} {
		m, ticks := Scale(v)
		if math.IsNaN(m) || math.IsInf(m, 0) || len(ticks) < 2 {
			t.Errorf("Scale(%v) = %v %v", v, m, ticks)
		}
	}
}

func TestEmpty(t *testing.T) {
	svg := Bars{ID: "e", Title: "Events", Desc: "none"}.SVG()
	text := wellFormed(t, svg)
	if !strings.Contains(text, "no data") || strings.Contains(svg, "<rect") {
		t.Errorf("an empty chart should say so and draw no bar:\n%s", svg)
	}
	if !strings.Contains(svg, `<title id="e-title">Events</title>`) || !strings.Contains(svg, `aria-labelledby="e-title e-desc"`) {
		t.Errorf("no accessible name:\n%s", svg)
	}
}

func TestOnePoint(t *testing.T) {
	svg := Bars{ID: "one", Title: "t", Points: []Point{{Label: "12:00", Value: 3}}, Width: 200, Height: 100}.SVG()
	text := wellFormed(t, svg)
	if n := strings.Count(svg, "<rect"); n != 1 {
		t.Fatalf("%d bars, want 1", n)
	}
	if !strings.Contains(text, "12:00: 3") || !strings.Contains(text, "12:00") {
		t.Errorf("the bar's label and value are not in the text:\n%s", svg)
	}
	// The bar reaches from the axis (y = 100 - 36) to 3/5 of the plot's height (52).
	if !strings.Contains(svg, `y="32.8"`) || !strings.Contains(svg, `height="31.2"`) {
		t.Errorf("bar not scaled to the axis of 5:\n%s", svg)
	}
}

func TestBarsScaleToTheLargest(t *testing.T) {
	svg := Bars{ID: "s", Points: []Point{{"a", 10}, {"b", 5}, {"c", 0}, {"d", -4}, {"e", math.NaN()}}, Height: 136}.SVG()
	wellFormed(t, svg)
	// Plot height 136-12-36 = 88: 10 fills it, 5 half of it, the rest nothing.
	for _, want := range []string{`height="88"`, `height="44"`, `<title>c: 0</title>`, `<title>d: 0</title>`, `<title>e: 0</title>`} {
		if !strings.Contains(svg, want) {
			t.Errorf("missing %s:\n%s", want, svg)
		}
	}
	// Only the first, middle and last bars are labelled under the axis.
	if got := strings.Count(svg, `font-size="11" fill="#4a5360">a<`) + strings.Count(svg, `>c</text>`) + strings.Count(svg, `>e</text>`); got != 3 {
		t.Errorf("%d axis labels, want 3:\n%s", got, svg)
	}
}

func TestEscaping(t *testing.T) {
	hostile := `<script>alert("x")</script>&'` + "\x00\x1b"
	svg := Bars{ID: `"><script>`, Title: hostile, Desc: hostile, YLabel: hostile, Points: []Point{{Label: hostile, Value: 1}}}.SVG()
	text := wellFormed(t, svg)
	if strings.Contains(svg, "<script") || strings.Contains(svg, "\x00") {
		t.Fatalf("hostile text not escaped:\n%s", svg)
	}
	if !strings.Contains(text, `<script>alert("x")</script>&'`) {
		t.Errorf("the escaped text does not read back as given:\n%q", text)
	}
	if !strings.Contains(svg, `id="script-title"`) && !strings.Contains(svg, `id="chartscript-title"`) {
		t.Errorf("the ID prefix was not cleaned:\n%s", svg)
	}
}

func TestBounds(t *testing.T) {
	pts := make([]Point, MaxPoints+5)
	svg := Bars{Title: strings.Repeat("x", 5000), Points: pts}.SVG()
	wellFormed(t, svg)
	if n := strings.Count(svg, "<rect"); n != MaxPoints {
		t.Errorf("%d bars, want %d", n, MaxPoints)
	}
	if strings.Contains(svg, strings.Repeat("x", maxText+1)) {
		t.Error("a long title is not clipped")
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 2.5: "2.5", 1.234: "1.23", 12000: "12k", 2_500_000: "2.5M", 3e9: "3G"} {
		if got := Format(v); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
}

// FuzzBars draws charts of arbitrary labels and values: the result is always one well-formed
// <svg> element whose markup holds no text it was given unescaped.
func FuzzBars(f *testing.F) {
	f.Add("events", "<b>x</b>", 3.0, 0.0, 5, 640, 200)
	f.Add("", "", math.Inf(1), -1.0, 0, 0, 0)
	f.Add("\xff\xfe", "&amp;", 1e300, 1e-300, 1, 1, 1)
	f.Fuzz(func(t *testing.T, title, label string, a, b float64, n, w, h int) {
		n = max(0, min(n, 50))
		var pts []Point
		for i := range n {
			v := a
			if i%2 == 1 {
				v = b
			}
			pts = append(pts, Point{Label: label, Value: v})
		}
		svg := Bars{ID: label, Title: title, Desc: label, YLabel: title, Points: pts, Width: w % 5000, Height: h % 5000}.SVG()
		wellFormed(t, svg)
		if strings.Count(svg, "<svg") != 1 || strings.Count(svg, "<script") != 0 {
			t.Fatalf("unexpected markup:\n%s", svg)
		}
		if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") && !strings.Contains(title+label, "Inf") {
			t.Fatalf("a coordinate is not a number:\n%s", svg)
		}
	})
}

func TestShortChartLabelsOnlyTheEnds(t *testing.T) {
	svg := Bars{ID: "s", Points: []Point{{"a", 5}}, Height: 90}.SVG()
	wellFormed(t, svg)
	if n := strings.Count(svg, `text-anchor="end" font-size="11"`); n != 2 || !strings.Contains(svg, `>5</text>`) {
		t.Errorf("%d value labels on a short chart, want 0 and 5:\n%s", n, svg)
	}
}
