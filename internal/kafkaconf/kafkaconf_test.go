package kafkaconf

import (
	"testing"
	"time"
)

// TestPatientConsumers: a patient configuration waits for a full fetch or FetchWait, whichever
// comes first; the default one returns a fetch as soon as one record is there, for the
// consumers on the synchronous path. Neither touches the producer.
func TestPatientConsumers(t *testing.T) {
	c := Config{Brokers: []string{"127.0.0.1:9092"}}
	eager, patient := c.Sarama(), c.Patient(20*time.Millisecond).Sarama()
	if eager.Consumer.Fetch.Min != 1 || eager.Consumer.MaxWaitTime != 250*time.Millisecond {
		t.Errorf("default consumer: fetch.min %d, max wait %s; want 1 byte, 250ms", eager.Consumer.Fetch.Min, eager.Consumer.MaxWaitTime)
	}
	if patient.Consumer.Fetch.Min != patientFetchBytes || patient.Consumer.MaxWaitTime != 20*time.Millisecond {
		t.Errorf("patient consumer: fetch.min %d, max wait %s; want %d bytes, 20ms", patient.Consumer.Fetch.Min, patient.Consumer.MaxWaitTime, patientFetchBytes)
	}
	if patient.Producer.Flush.Frequency != eager.Producer.Flush.Frequency || patient.Producer.RequiredAcks != eager.Producer.RequiredAcks {
		t.Error("Patient changed the producer")
	}
	if err := patient.Validate(); err != nil {
		t.Errorf("patient configuration: %v", err)
	}
}
