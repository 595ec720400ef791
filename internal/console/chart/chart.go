// Package chart draws the console's charts as static SVG, so a page shows them without
// JavaScript. It owns the drawing only: scaling, axes, labels and escaping. Every text it is
// given (titles, labels) is untrusted and escaped; the output is a self-contained <svg>
// element, safe to embed in an HTML page as is.
package chart

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bounds of a chart.
const (
	MaxPoints = 1000 // points drawn; more are refused
	maxText   = 200  // characters kept of any one label or title
)

// Point is one bar: a label (such as a time) and a value, not negative.
type Point struct {
	Label string
	Value float64
}

// Bars is a bar chart of values over ordered labels, such as events per hour.
type Bars struct {
	ID     string // prefix of the chart's element IDs, unique on the page; letters, digits, '-'
	Title  string // the chart's accessible name
	Desc   string // a summary of what it shows
	YLabel string // what the values count, such as "events"
	Points []Point
	Width  int // default 640
	Height int // default 200
}

// Layout margins, in SVG user units.
const (
	marginLeft   = 48
	marginRight  = 12
	marginTop    = 12
	marginBottom = 36
)

// SVG draws the chart. An empty chart draws its axes and says there is no data; negative,
// NaN and infinite values are drawn as 0, and points beyond MaxPoints are dropped (the
// description says so).
func (b Bars) SVG() string {
	w, h := b.Width, b.Height
	if w <= 0 {
		w = 640
	}
	if h <= 0 {
		h = 200
	}
	w, h = max(w, marginLeft+marginRight+10), max(h, marginTop+marginBottom+10)
	pts := b.Points
	desc := clip(b.Desc)
	if len(pts) > MaxPoints {
		pts = pts[:MaxPoints]
		desc += fmt.Sprintf(" (only the first %d points are drawn)", MaxPoints)
	}
	vals := make([]float64, len(pts))
	top := 0.0
	for i, p := range pts {
		v := p.Value
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			v = 0
		}
		vals[i] = v
		top = max(top, v)
	}
	axisMax, ticks := Scale(top)
	id := cleanID(b.ID)
	plotW, plotH := float64(w-marginLeft-marginRight), float64(h-marginTop-marginBottom)
	y := func(v float64) float64 { return float64(marginTop) + plotH - v/axisMax*plotH }

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="100%%" preserveAspectRatio="xMinYMin meet" role="img" aria-labelledby="%s-title %s-desc">`, w, h, id, id)
	fmt.Fprintf(&s, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(clip(b.Title)), id, esc(desc))
	// Grid lines and the value axis's labels; a short chart labels only 0 and its maximum.
	if plotH < 60 {
		ticks = []float64{0, axisMax}
	}
	for _, t := range ticks {
		ty := y(t)
		fmt.Fprintf(&s, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#c9d0d8" stroke-width="1"/>`, marginLeft, f(ty), w-marginRight, f(ty))
		fmt.Fprintf(&s, `<text x="%d" y="%s" text-anchor="end" font-size="11" fill="#4a5360">%s</text>`, marginLeft-6, f(ty+4), esc(Format(t)))
	}
	if yl := clip(b.YLabel); yl != "" {
		fmt.Fprintf(&s, `<text x="12" y="%s" font-size="11" fill="#4a5360" transform="rotate(-90 12 %s)" text-anchor="middle">%s</text>`,
			f(float64(marginTop)+plotH/2), f(float64(marginTop)+plotH/2), esc(yl))
	}
	// Axes.
	fmt.Fprintf(&s, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1b1f24" stroke-width="1"/>`, marginLeft, marginTop, marginLeft, h-marginBottom)
	fmt.Fprintf(&s, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1b1f24" stroke-width="1"/>`, marginLeft, h-marginBottom, w-marginRight, h-marginBottom)
	if len(pts) == 0 {
		fmt.Fprintf(&s, `<text x="%s" y="%s" text-anchor="middle" font-size="13" fill="#4a5360">no data</text>`, f(float64(marginLeft)+plotW/2), f(float64(marginTop)+plotH/2))
		s.WriteString(`</svg>`)
		return s.String()
	}
	slot := plotW / float64(len(pts))
	barW := max(slot*0.8, 0.5)
	for i, p := range pts {
		x := float64(marginLeft) + slot*float64(i) + (slot-barW)/2
		top := y(vals[i])
		fmt.Fprintf(&s, `<rect x="%s" y="%s" width="%s" height="%s" fill="#0a4fb4"><title>%s: %s</title></rect>`,
			f(x), f(top), f(barW), f(float64(h-marginBottom)-top), esc(clip(p.Label)), esc(Format(vals[i])))
	}
	// Labels under the first, middle and last bars (fewer when they would overlap).
	for _, i := range labelled(len(pts)) {
		x := float64(marginLeft) + slot*(float64(i)+0.5)
		anchor := "middle"
		switch {
		case i == 0 && len(pts) > 1:
			anchor, x = "start", float64(marginLeft)+slot*float64(i)
		case i == len(pts)-1 && len(pts) > 1:
			anchor, x = "end", float64(marginLeft)+slot*float64(i+1)
		}
		fmt.Fprintf(&s, `<text x="%s" y="%d" text-anchor="%s" font-size="11" fill="#4a5360">%s</text>`, f(x), h-marginBottom+16, anchor, esc(clip(pts[i].Label)))
	}
	s.WriteString(`</svg>`)
	return s.String()
}

// labelled picks which of n bars get a label under them.
func labelled(n int) []int {
	switch {
	case n <= 0:
		return nil
	case n == 1:
		return []int{0}
	case n == 2:
		return []int{0, 1}
	}
	return []int{0, n / 2, n - 1}
}

// Scale chooses the value axis for data whose largest value is top: a round maximum at or
// above top (1, 2 or 5 times a power of ten; at least 1) and the ticks from 0 to it.
func Scale(top float64) (axisMax float64, ticks []float64) {
	if top <= 1 || math.IsNaN(top) {
		return 1, []float64{0, 0.5, 1}
	}
	top = min(top, 1e300) // beyond any count; keeps the axis finite
	p := math.Pow(10, math.Floor(math.Log10(top)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= top {
			axisMax = m * p
			break
		}
	}
	step := axisMax / 5
	if m := axisMax / p; m == 2 {
		step = axisMax / 4
	}
	for i := 0; i <= 5; i++ {
		t := step * float64(i)
		if t > axisMax*(1+1e-9) {
			break
		}
		ticks = append(ticks, t)
	}
	return axisMax, ticks
}

// Format writes a value as the chart labels it: whole numbers plainly, others with at most two
// decimals, large ones with a k, M or G suffix.
func Format(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(v/1e9) + "G"
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e4:
		return trim(v/1e3) + "k"
	}
	return trim(v)
}

func trim(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// f writes a coordinate with one decimal.
func f(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// clip keeps at most maxText characters of a text.
func clip(s string) string {
	r := []rune(s)
	if len(r) > maxText {
		return string(r[:maxText-1]) + "…"
	}
	return s
}

// esc escapes a text for SVG character data and attribute values, dropping characters XML
// does not allow.
func esc(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '&':
			b.WriteString("&amp;")
		case r == '"':
			b.WriteString("&#34;")
		case r == '\'':
			b.WriteString("&#39;")
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r < 0x20 || (r >= 0xD800 && r <= 0xDFFF) || r == 0xFFFE || r == 0xFFFF:
			// not allowed in XML
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cleanID keeps letters, digits and '-' of an ID prefix ("chart" if nothing is left).
func cleanID(s string) string {
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 || !(b.String()[0] >= 'a' && b.String()[0] <= 'z' || b.String()[0] >= 'A' && b.String()[0] <= 'Z') {
		return "chart" + b.String()
	}
	return b.String()
}
