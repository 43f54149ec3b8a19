package grpcgateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// TestLockoutAndUnblock: five failed verifications (by payments, or by VerifyCard as the
// statement page asks) block the card, even with the card's own approvals between them; its
// own data then proves nothing, and only its own data is told it is blocked: a wrong CVV gets
// DO_NOT_HONOR as on any card. An operator unblocks it and it pays again.
func TestLockoutAndUnblock(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	pages := codebankv1.NewCardServiceClient(b.in.Conn) // VerifyCard goes with the pages' key
	for _, how := range []string{"payments", "verifications"} {
		c := issue(t, b.cards, "Maria Silva", 100_000)
		wrong := details(c)
		wrong.Cvv = fmt.Sprintf("%03d", (atoi(wrong.Cvv)+1)%1000)
		for i := range 5 {
			if how == "payments" {
				r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: wrong, AmountCents: 100})
				if r.GetReason() != codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR {
					t.Fatalf("%s: payment %d with a wrong CVV = %v, want DO_NOT_HONOR", how, i, r.GetReason())
				}
				if i < 4 { // the card's own approvals between the guesses clear nothing
					if r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 100}); r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
						t.Fatalf("%s: the card's own payment after %d wrong CVVs = %v, want approved", how, i+1, r)
					}
				}
				continue
			}
			v, err := pages.VerifyCard(ctxT(t), &codebankv1.VerifyCardRequest{Number: wrong.GetNumber(), ExpiryMonth: wrong.GetExpiryMonth(),
				ExpiryYear: wrong.GetExpiryYear(), Cvv: wrong.GetCvv()})
			if err != nil || v.GetVerified() || v.GetCardId() != "" {
				t.Fatalf("%s: verification %d with a wrong CVV = %v, %v; want a bare no", how, i, v, err)
			}
		}
		got, err := b.cards.GetCard(ctxT(t), &codebankv1.GetCardRequest{CardId: c.GetCard().GetCardId()})
		if err != nil || got.GetCard().GetStatus() != codebankv1.CardStatus_CARD_STATUS_BLOCKED ||
			got.GetCard().GetBlockReason() != codebankv1.BlockReason_BLOCK_REASON_VERIFICATION_FAILURES || got.GetCard().GetVerificationFailures() != 5 {
			t.Fatalf("%s: after 5 failures the card is %v, %v; want blocked for verification failures", how, got.GetCard(), err)
		}
		if r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 100}); r.GetReason() != codebankv1.RejectReason_REJECT_REASON_CARD_BLOCKED {
			t.Errorf("%s: the right data on a locked card = %v, want CARD_BLOCKED", how, r.GetReason())
		}
		if r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: wrong, AmountCents: 100}); r.GetReason() != codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR {
			t.Errorf("%s: a wrong CVV on a locked card = %v, want DO_NOT_HONOR: the guesser must not learn the number is a card", how, r.GetReason())
		}
		if v, err := pages.VerifyCard(ctxT(t), &codebankv1.VerifyCardRequest{Number: c.GetCard().GetNumber(), ExpiryMonth: c.GetCard().GetExpiryMonth(),
			ExpiryYear: c.GetCard().GetExpiryYear(), Cvv: c.GetCvv()}); err != nil || v.GetVerified() {
			t.Errorf("%s: the right data verifies a locked card: %v, %v", how, v, err)
		}
		un, err := b.cards.UnblockCard(ctxT(t), &codebankv1.UnblockCardRequest{CardId: c.GetCard().GetCardId()})
		if err != nil || un.GetCard().GetStatus() != codebankv1.CardStatus_CARD_STATUS_ACTIVE || un.GetCard().GetVerificationFailures() != 0 {
			t.Fatalf("%s: unblock = %v, %v", how, un, err)
		}
		if r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 100}); r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			t.Errorf("%s: payment after unblock = %v", how, r)
		}
	}
	// An operator's block rejects every payment until an unblock.
	c := issue(t, b.cards, "Joao Souza", 100_000)
	if bl, err := b.cards.BlockCard(ctxT(t), &codebankv1.BlockCardRequest{CardId: c.GetCard().GetCardId()}); err != nil ||
		bl.GetCard().GetBlockReason() != codebankv1.BlockReason_BLOCK_REASON_OPERATOR {
		t.Fatalf("block = %v, %v", bl, err)
	}
	if r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 100}); r.GetReason() != codebankv1.RejectReason_REJECT_REASON_CARD_BLOCKED {
		t.Errorf("payment on a blocked card = %v", r.GetReason())
	}
}

// TestCardKeyRotation: an ingress whose current card key is new issues under it, and verifies
// the cards of the older key it still holds; one that no longer holds the older key refuses
// their CVVs.
func TestCardKeyRotation(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 2, 3)
	banktest.StartAuthorizer(t, d, "")
	keys := func(cardKeys ...card.CardKey) *card.Keys {
		k, err := card.NewKeys([]byte(banktest.TokenKey), cardKeys...)
		if err != nil {
			t.Fatal(err)
		}
		return &k
	}
	k1 := card.CardKey{ID: "2026-01", Secret: []byte("the first card key of the test: 32+ bytes")}
	k2 := card.CardKey{ID: "2026-07", Secret: []byte("the second card key of the test: 32+ bytes")}
	clients := func(in *banktest.Ingress) (codebankv1.CardServiceClient, codebankv1.PaymentServiceClient) {
		return codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	}
	cardsBefore, payBefore := clients(banktest.StartIngress(t, d, banktest.IngressOptions{Keys: keys(k1), ReplyPartition: 0}))
	old := issue(t, cardsBefore, "Maria Silva", 100_000)
	if r := authorize(t, payBefore, &codebankv1.AuthorizeRequest{Card: details(old), AmountCents: 100}); r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("before the rotation: %v", r)
	}
	cardsAfter, payAfter := clients(banktest.StartIngress(t, d, banktest.IngressOptions{Keys: keys(k2, k1), ReplyPartition: 1}))
	fresh := issue(t, cardsAfter, "Joao Souza", 100_000)
	for _, c := range []*codebankv1.IssueCardResponse{old, fresh} {
		if r := authorize(t, payAfter, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 100}); r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			t.Errorf("after the rotation, card %s = %v, want approved", c.GetCard().GetMaskedNumber(), r)
		}
	}
	if cvv, _ := keys(k1).CVV(k1.ID, fresh.GetCard().GetNumber(), card.Expiry{Month: int(fresh.GetCard().GetExpiryMonth()), Year: int(fresh.GetCard().GetExpiryYear())}); cvv == fresh.GetCvv() {
		t.Log("the new card's CVV happens to be its CVV under the old key too (1 in 1000)")
	}
	_, payRetired := clients(banktest.StartIngress(t, d, banktest.IngressOptions{Keys: keys(k2), ReplyPartition: 2}))
	if r := authorize(t, payRetired, &codebankv1.AuthorizeRequest{Card: details(old), AmountCents: 100}); r.GetReason() != codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR {
		t.Errorf("a card of a retired key = %v, want DO_NOT_HONOR", r.GetReason())
	}
}

// TestMerchantFromTheKey: the statement names the merchant whose key paid, with the store the
// request gave as its sub-name only: a merchant cannot pay in another's name.
func TestMerchantFromTheKey(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 2, 2)
	banktest.StartAuthorizer(t, d, "")
	st := banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Statements: st.Reader})
	cards, stmts := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewStatementServiceClient(in.Conn)
	other, err := grpc.NewClient(in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcgateway.CallerKeys{Merchant: banktest.OtherMerchantKey, Insecure: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c := issue(t, cards, "Maria Silva", 100_000)
	authorize(t, codebankv1.NewPaymentServiceClient(in.Conn), &codebankv1.AuthorizeRequest{TransactionId: "a", Card: details(c), AmountCents: 100,
		Store: "Centro", Description: "x"})
	authorize(t, codebankv1.NewPaymentServiceClient(other), &codebankv1.AuthorizeRequest{TransactionId: "a", Card: details(c), AmountCents: 200,
		Store: "Code Store", Description: "x"})
	month := time.Now().UTC().Format("2006-01")
	_, lines := statementLines(t, stmts, c.GetCard().GetCardId(), month, 0)
	var stores []string
	for _, l := range lines {
		stores = append(stores, l.GetStore())
	}
	if got := strings.Join(stores, "|"); got != "Code Store (Centro)|Other Shop (Code Store)" {
		t.Errorf("statement stores = %q, want each merchant's own name, the request's store as a sub-name", got)
	}
}
