package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/codebank/codebank/web/store"
)

// Product is one product on sale.
type Product struct {
	// Slug names the product in URLs: /products/{slug}.
	Slug string
	Name string
	// Summary is one line for the catalog; Description a paragraph for the product page.
	Summary     string
	Description string
	// PriceCents is the unit price in minor units of Config.Currency.
	PriceCents int64
	// Image is the path of its picture under /static/.
	Image string
}

// Catalog returns the seeded catalog: six products with prices in BRL and pictures drawn for
// the project (static/img).
func Catalog() []Product {
	return []Product{
		{Slug: "stoneware-mug", Name: "Stoneware Mug", PriceCents: 5990, Image: "img/mug.svg",
			Summary:     "A 350 ml mug, glazed by hand, for the first coffee of the sprint.",
			Description: "Thrown in small batches from stoneware clay and finished with a glossy teal glaze. Holds 350 ml, keeps coffee warm through a stand-up, and is safe in the dishwasher and the microwave."},
		{Slug: "dot-grid-notebook", Name: "Dot-Grid Notebook", PriceCents: 3990, Image: "img/notebook.svg",
			Summary:     "A5, 192 pages of 100 g/m² paper with a 5 mm dot grid.",
			Description: "Lay-flat binding, numbered pages, an index, two ribbon markers and a pocket at the back. The dot grid is faint enough for writing and firm enough for diagrams of your next topology."},
		{Slug: "everyday-backpack", Name: "Everyday Backpack", PriceCents: 28900, Image: "img/backpack.svg",
			Summary:     "20 litres, water-resistant, with a padded sleeve for a 15\" laptop.",
			Description: "Recycled polyester with a water-resistant coating, YKK zips, a padded laptop sleeve, a quick-access pocket for cards and keys, and shoulder straps that stay comfortable on the commute."},
		{Slug: "wireless-headphones", Name: "Wireless Headphones", PriceCents: 49900, Image: "img/headphones.svg",
			Summary:     "Over-ear, active noise cancelling, 30 hours of battery.",
			Description: "Closed-back over-ear headphones with active noise cancelling, 40 mm drivers, Bluetooth 5.3 with two devices at once, and a fast charge that gives three hours of music in ten minutes."},
		{Slug: "organic-cotton-tshirt", Name: "Organic Cotton T-Shirt", PriceCents: 7990, Image: "img/tshirt.svg",
			Summary:     "Heavyweight organic cotton, relaxed fit, printed in São Paulo.",
			Description: "180 g/m² certified organic cotton, a relaxed fit that keeps its shape after washing, and a small Code Store mark printed with water-based ink. Sizes from S to XXL."},
		{Slug: "stream-processing-book", Name: "Stream Processing in Practice", PriceCents: 12900, Image: "img/book.svg",
			Summary:     "A hardcover guide to building systems on event streams.",
			Description: "Four hundred pages on topics, partitions, state stores, exactly-once in effect and the trade-offs of request-reply over a log, with worked examples from payments and retail."},
	}
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "catalog.html", page{Title: "Catalog", Nav: "store", Data: s.cfg.Catalog})
}

// productPage is the data of the product page and its checkout form.
type productPage struct {
	Product Product
	Form    checkoutForm
	Errors  map[string]string
	// General is an error about the whole form, not one field.
	General string
	// Qty is the quantity typed if valid, else 1: the total shown is for it.
	Qty    int
	Symbol string
}

func (s *Server) product(w http.ResponseWriter, r *http.Request) {
	p, ok := s.products[r.PathValue("slug")]
	if !ok {
		s.notFound(w, r)
		return
	}
	form := checkoutForm{OrderID: s.newOrderID(), Product: p.Slug, Quantity: "1"}
	s.renderProduct(w, http.StatusOK, p, form, nil, "")
}

func (s *Server) renderProduct(w http.ResponseWriter, code int, p Product, form checkoutForm, errs map[string]string, general string) {
	form.CVV = "" // never sent back
	qty, err := strconv.Atoi(form.Quantity)
	if err != nil || qty < 1 || qty > MaxQuantity {
		qty = 1
	}
	s.render(w, code, "product.html", page{Title: p.Name, Nav: "store",
		Data: productPage{Product: p, Form: form, Errors: errs, General: general, Qty: qty, Symbol: s.cfg.CurrencySymbol}})
}

// description is what the bank's statement says was bought: "Produtos: 2x Stoneware Mug".
func description(items []store.Item) string {
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Name
		if it.Quantity > 1 {
			names[i] = strconv.Itoa(it.Quantity) + "x " + it.Name
		}
	}
	return "Produtos: " + strings.Join(names, ", ")
}
