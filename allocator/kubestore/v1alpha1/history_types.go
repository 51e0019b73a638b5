package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The attribution history's keys.
const (
	// FinalizerHistory holds a released IPAMClaim until the recorder has
	// written its addresses into the history, so that no allocation goes
	// unrecorded, even one that starts and ends while the recorder is
	// down. The CNI plugin sets it when it creates the claim (ipam.history).
	FinalizerHistory = "ipam.poolguard.dev/history"
	// LabelHistoryShard and LabelHistoryDay label an IPAMHistory with its
	// shard (history.ShardLabel) and UTC day (YYYYMMDD): a query lists one
	// shard's segments, the retention sweep deletes whole days.
	LabelHistoryShard = "ipam.poolguard.dev/shard"
	LabelHistoryDay   = "ipam.poolguard.dev/day"
	// LabelClaimShardIPv4 and LabelClaimShardIPv6 label an IPAMClaim with
	// the shards of its addresses, so who holds an address now is one
	// list of the claims of its shard, never of every claim.
	LabelClaimShardIPv4 = "ipam.poolguard.dev/shard-ipv4"
	LabelClaimShardIPv6 = "ipam.poolguard.dev/shard-ipv6"
)

// IPAMHistorySpec is one segment of the attribution history: the released
// allocations of one shard of addresses (a /24 or an IPv6 /120) on one UTC
// day.
type IPAMHistorySpec struct {
	// Shard is the range of the addresses recorded here.
	Shard string `json:"shard"`
	// Day is the UTC day (YYYYMMDD) of the releases recorded here.
	Day string `json:"day"`
	// Count is the number of records.
	Count int32 `json:"count"`
	// Records are the records, a JSON array compressed with gzip: history
	// is written once and read rarely, and compressed it takes about a
	// third of etcd's space. The recorder keeps a segment under 256 KiB,
	// far from etcd's 1.5 MiB object limit. Read it with
	// kubectl poolguard who-had.
	// +kubebuilder:validation:MaxLength=349528
	Records []byte `json:"records,omitempty"`
}

// IPAMHistory is a segment of the attribution history. Only the
// allocator's recorder writes it; people read it with
// kubectl poolguard who-had.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=poolguard
// +kubebuilder:printcolumn:name="Shard",type=string,JSONPath=`.spec.shard`
// +kubebuilder:printcolumn:name="Day",type=string,JSONPath=`.spec.day`
// +kubebuilder:printcolumn:name="Records",type=integer,JSONPath=`.spec.count`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAMHistory struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMHistorySpec `json:"spec"`
}

// IPAMHistoryList is a list of IPAMHistories.
//
// +kubebuilder:object:root=true
type IPAMHistoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMHistory `json:"items"`
}
