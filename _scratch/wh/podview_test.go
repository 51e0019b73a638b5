package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// mirrorPod is a v1 Pod that names only the fields podView holds. Decoded
// by the scheme's decoder, the path controller-runtime's WithValidator
// took for a corev1.Pod (apiVersion and kind read case-insensitively and
// defaulted, then the API server's case-sensitive sigs.k8s.io/json), it is
// the reference decodePodView must match: what that path made of the
// fields poolguard reads, without its type checks of the fields it does
// not read.
type mirrorPod struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Metadata   struct {
		Name         string            `json:"name,omitempty"`
		GenerateName string            `json:"generateName,omitempty"`
		Namespace    string            `json:"namespace,omitempty"`
		Annotations  map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork bool   `json:"hostNetwork,omitempty"`
		NodeName    string `json:"nodeName,omitempty"`
	} `json:"spec"`
}

func (p *mirrorPod) GetObjectKind() schema.ObjectKind { return p }

func (p *mirrorPod) SetGroupVersionKind(gvk schema.GroupVersionKind) {
	p.APIVersion, p.Kind = gvk.ToAPIVersionAndKind()
}

func (p *mirrorPod) GroupVersionKind() schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(p.APIVersion, p.Kind)
}

func (p *mirrorPod) DeepCopyObject() runtime.Object {
	out := *p
	if p.Metadata.Annotations != nil {
		out.Metadata.Annotations = make(map[string]string, len(p.Metadata.Annotations))
		for k, v := range p.Metadata.Annotations {
			out.Metadata.Annotations[k] = v
		}
	}
	return &out
}

// referenceDecoders decode a pod object the two ways decodePodView is
// checked against: into mirrorPod, and into the whole corev1.Pod, both by
// the scheme's decoder as controller-runtime's WithValidator did.
type referenceDecoders struct {
	mirror, full admission.Decoder
}

func newReferenceDecoders(t testing.TB) referenceDecoders {
	mirrorScheme := runtime.NewScheme()
	mirrorScheme.AddKnownTypeWithName(podGVK, &mirrorPod{})
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	return referenceDecoders{mirror: admission.NewDecoder(mirrorScheme), full: admission.NewDecoder(scheme)}
}

// mirrorView is the reference view of raw.
func (r referenceDecoders) mirrorView(raw []byte) (podView, error) {
	var p mirrorPod
	if err := r.mirror.DecodeRaw(runtime.RawExtension{Raw: raw}, &p); err != nil {
		return podView{}, err
	}
	return podView{Name: p.Metadata.Name, GenerateName: p.Metadata.GenerateName, Namespace: p.Metadata.Namespace,
		Annotations: p.Metadata.Annotations, HostNetwork: p.Spec.HostNetwork, NodeName: p.Spec.NodeName}, nil
}

// fullView is the view of raw decoded as a whole corev1.Pod.
func (r referenceDecoders) fullView(raw []byte) (podView, error) {
	var p corev1.Pod
	if err := r.full.DecodeRaw(runtime.RawExtension{Raw: raw}, &p); err != nil {
		return podView{}, err
	}
	return viewOf(&p), nil
}

// isJSONObject reports whether raw starts, after white space, with '{':
// the scheme's decoder took a null object for an empty pod, which
// decodePodView refuses.
func isJSONObject(raw []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{"))
}

// checkPodView fails when decodePodView reads raw otherwise than the
// reference decoders: the mirror's view field for field (a nil map and an
// empty one differ: the freeze patches them differently) or its error,
// and, where the whole pod decodes, that pod's fields.
func checkPodView(t *testing.T, ref referenceDecoders, raw []byte) {
	t.Helper()
	got, err := decodePodView(raw)
	if err != nil && !errors.Is(err, ErrMalformedPod) {
		t.Fatalf("decodePodView(%s): error %v does not wrap ErrMalformedPod", elided(raw), err)
	}
	want, wantErr := ref.mirrorView(raw)
	if wantErr == nil && !isJSONObject(raw) {
		wantErr = errors.New("not a JSON object")
	}
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("decodePodView(%s) = %+v, %v; the scheme's decoder: %+v, %.300v", elided(raw), got, err, want, wantErr)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("decodePodView(%s) =\n%#v\nthe scheme's decoder read\n%#v", elided(raw), got, want)
	}
	if full, ferr := ref.fullView(raw); ferr == nil && err == nil && !reflect.DeepEqual(got, full) {
		t.Fatalf("decodePodView(%s) =\n%#v\nthe whole corev1.Pod has\n%#v", elided(raw), got, full)
	}
}

// elided quotes raw for a failure message, eliding the middle of a long
// input.
func elided(raw []byte) string {
	const keep = 300
	if len(raw) <= 2*keep {
		return fmt.Sprintf("%q", raw)
	}
	return fmt.Sprintf("%q...(%d bytes)...%q", raw[:keep], len(raw)-2*keep, raw[len(raw)-keep:])
}

// TestPodViewDecodesAsTheAPIServer: the pod view of an object is what the
// scheme's decoder (the API server's case-sensitive sigs.k8s.io/json
// behind controller-runtime's) makes of the fields poolguard reads, for
// the pods the API server sends and for objects only a forger sends:
// keys differing only in case, escaped keys, duplicates, nulls, invalid
// UTF-8, other kinds, and malformed JSON.
func TestPodViewDecodesAsTheAPIServer(t *testing.T) {
	ref := newReferenceDecoders(t)
	deep := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	for name, raw := range map[string]string{
		"a pod as the API server sends it": `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","generateName":"p-","namespace":"ns","uid":"u","labels":{"a":"b"},"annotations":{"a":"1","cni.projectcalico.org/ipv4pools":"[\"x\"]"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"r","uid":"u","controller":true}]},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"100m"}}}],"nodeName":"n1","hostNetwork":true,"priority":0,"terminationGracePeriodSeconds":30},"status":{}}`,
		"no apiVersion and kind":           `{"metadata":{"name":"p"}}`,
		"empty object":                     `{}`,
		"white space everywhere":           " \r\n\t{ \"metadata\" : { \"annotations\" : { \"a\" : \"b\" } } , \"spec\" : { \"hostNetwork\" : false } } \n",
		"differently cased keys":           `{"metadata":{"annotations":{"a":"1"},"Annotations":{"b":"2"},"NAME":"x","name":"p"},"Metadata":{"annotations":{"c":"3"}},"spec":{"HostNetwork":true,"nodename":"n"}}`,
		"cased key after":                  `{"metadata":{"Annotations":{"b":"2"},"annotations":{"a":"1"}},"Spec":{"hostNetwork":true}}`,
		"escaped keys":                     `{"metad\u0061ta":{"\u0061nnotations":{"\u00e9\n":"\u00e9\ud83d\ude00\"","k":"v\/w"}},"sp\u0065c":{"hostN\u0065twork":true}}`,
		"escaped key case":                 `{"metadata":{"\u0041nnotations":{"a":"1"}}}`,
		"duplicate annotations merge":      `{"metadata":{"annotations":{"a":"1","b":"2"},"annotations":{"b":"3","c":"4"}}}`,
		"duplicate metadata merges":        `{"metadata":{"name":"p","annotations":{"a":"1"}},"metadata":{"namespace":"ns"}}`,
		"duplicate annotation keys":        `{"metadata":{"annotations":{"a":"1","a":"2"}}}`,
		"null annotations clear":           `{"metadata":{"annotations":{"a":"1"},"annotations":null}}`,
		"null annotation value":            `{"metadata":{"annotations":{"a":null}}}`,
		"empty annotations":                `{"metadata":{"annotations":{}}}`,
		"nulls leave values":               `{"metadata":{"name":"p","name":null,"namespace":null},"metadata":null,"spec":{"hostNetwork":true,"hostNetwork":null,"nodeName":null},"spec":null}`,
		"invalid UTF-8":                    "{\"metadata\":{\"annotations\":{\"a\xff\":\"b\xc3\",\"c\":\"\xed\xa0\x80\"},\"name\":\"\xe9\"}}",
		"lone surrogate escape":            `{"metadata":{"annotations":{"a":"\ud800","b":"\udc00x"}}}`,
		"kind Pod":                         `{"apiVersion":"v1","kind":"Pod"}`,
		"kind only":                        `{"kind":"Pod"}`,
		"apiVersion only":                  `{"apiVersion":"v1"}`,
		"apiVersion /v1":                   `{"apiVersion":"/v1"}`,
		"kind Namespace":                   `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"p"}}`,
		"kind in other case":               `{"KIND":"Namespace"}`,
		"kind Kelvin sign":                 `{"\u212aind":"Namespace"}`,
		"kind null":                        `{"kind":"Pod","kind":null}`,
		"kind a number":                    `{"kind":1}`,
		"apps/v1":                          `{"apiVersion":"apps/v1","kind":"Pod"}`,
		"three-part apiVersion":            `{"apiVersion":"a/b/c"}`,
		"v1/":                              `{"apiVersion":"v1/"}`,
		"metadata a string":                `{"metadata":"p"}`,
		"metadata an array":                `{"metadata":[]}`,
		"annotations an array":             `{"metadata":{"annotations":["a"]}}`,
		"annotation a number":              `{"metadata":{"annotations":{"a":1}}}`,
		"annotation an object":             `{"metadata":{"annotations":{"a":{}}}}`,
		"name a number":                    `{"metadata":{"name":1}}`,
		"hostNetwork a string":             `{"spec":{"hostNetwork":"true"}}`,
		"hostNetwork a number":             `{"spec":{"hostNetwork":1}}`,
		"nodeName a bool":                  `{"spec":{"nodeName":true}}`,
		"spec a number":                    `{"spec":-1.5e3}`,
		"numbers":                          `{"x":[0,-0,1.5,-2e10,3E+2,4e-2,10]}`,
		"deep but not too deep":            `{"x":` + deep[1:len(deep)-1] + `}`,
		"too deep":                         `{"x":` + deep + `}`,
		"null":                             `null`,
		"an array":                         `[]`,
		"a string":                         `"pod"`,
		"a number":                         `1`,
		"empty":                            ``,
		"not JSON":                         `not json`,
		"trailing data":                    `{} {}`,
		"trailing comma":                   `{"a":1,}`,
		"missing colon":                    `{"a" 1}`,
		"unterminated":                     `{"metadata":{"name":"p"`,
		"unterminated string":              `{"metadata":{"name":"p`,
		"control character":                "{\"a\":\"\x01\"}",
		"bad escape":                       `{"a":"\x"}`,
		"short unicode escape":             `{"a":"\u12"}`,
		"leading zero":                     `{"a":01}`,
		"bare minus":                       `{"a":-}`,
		"bad literal":                      `{"a":tru}`,
		"single quotes":                    `{'a':1}`,
	} {
		t.Run(name, func(t *testing.T) { checkPodView(t, ref, []byte(raw)) })
	}
}

// TestPodViewReadsOnlyItsFields: a field poolguard does not read is not
// type-checked (the scheme's decoder of the whole pod refused it, the
// mirror does not), and a null object is refused (the scheme's decoder
// took it for an empty pod). These are the two ways decodePodView differs
// from the whole pod's decode, neither of which the API server sends.
func TestPodViewReadsOnlyItsFields(t *testing.T) {
	ref := newReferenceDecoders(t)
	raw := []byte(`{"metadata":{"name":"p","labels":"not a map"},"spec":{"containers":"not a list"}}`)
	if _, err := ref.fullView(raw); err == nil {
		t.Fatal("the whole pod decoded; the test needs one that does not")
	}
	if v, err := decodePodView(raw); err != nil || v.Name != "p" {
		t.Fatalf("decodePodView = %+v, %v; want the pod named p", v, err)
	}
	if _, err := ref.fullView([]byte("null")); err != nil {
		t.Fatalf("the scheme's decoder refused null: %v", err)
	}
	if _, err := decodePodView([]byte("null")); !errors.Is(err, ErrMalformedPod) {
		t.Fatalf("decodePodView(null) = %v, want ErrMalformedPod", err)
	}
}
