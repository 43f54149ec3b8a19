package web

import "strconv"

// fieldView is what the "field" template draws: a labelled input, its hint and its error.
type fieldView struct {
	ID, Name, Label, Type, Value         string
	Auto, Mode, Placeholder, Hint, Class string
	Min, MaxValue                        string
	Max                                  int
	Err                                  string
	Focus                                bool
}

// fieldSpecs describe the form fields by name.
var fieldSpecs = map[string]fieldView{
	"quantity": {Label: "Quantity", Type: "number", Mode: "numeric", Min: "1", MaxValue: strconv.Itoa(MaxQuantity), Class: "narrow",
		Hint: "From 1 to " + strconv.Itoa(MaxQuantity)},
	"holder": {Label: "Name on card", Type: "text", Auto: "cc-name", Max: 64, Placeholder: "As printed on the card"},
	"number": {Label: "Card number", Type: "text", Auto: "cc-number", Mode: "numeric", Max: 23, Placeholder: "16 digits"},
	"expiry": {Label: "Expiry date", Type: "text", Auto: "cc-exp", Mode: "numeric", Max: 7, Placeholder: "MM/YY"},
	"cvv":    {Label: "CVV", Type: "text", Auto: "cc-csc", Mode: "numeric", Max: 3, Hint: "3 digits on the back"},
	"month":  {Label: "Month", Type: "month", Placeholder: "YYYY-MM", Hint: "Year and month, e.g. 2026-11"},
}

// field returns the view of a form field named name.
func field(name, value string, errs map[string]string, focus string) fieldView {
	f := fieldSpecs[name]
	f.ID, f.Name, f.Value, f.Err, f.Focus = name, name, value, errs[name], focus == name
	if f.Type == "" {
		f.Type = "text"
	}
	return f
}

// focus returns the first of names, in the form's order, that has an error: that field gets
// the keyboard focus when the page loads.
func focus(errs map[string]string, names ...string) string {
	for _, n := range names {
		if _, ok := errs[n]; ok {
			return n
		}
	}
	return ""
}
