{{/*
CEL shared by the webhook configurations and the ValidatingAdmissionPolicies.
The expressions are webhook/configuration.go's, character for character;
chart_test fails when they drift.
*/}}

{{/* The annotations frozen at pod creation. */}}
{{- define "poolguard.celGuardedKeys" -}}
'cni.projectcalico.org/ipv4pools', 'cni.projectcalico.org/ipv6pools', 'ipam.poolguard.dev/provenance'
{{- end }}

{{/* True when an UPDATE adds, changes or removes a frozen annotation. */}}
{{- define "poolguard.celFrozenChanged" -}}
[{{ include "poolguard.celGuardedKeys" . }}].exists(k, (has(object.metadata.annotations) && k in object.metadata.annotations) != (has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations) || (has(object.metadata.annotations) && k in object.metadata.annotations && object.metadata.annotations[k] != oldObject.metadata.annotations[k]))
{{- end }}

{{/* True when the object carries a frozen annotation (a subresource CREATE such as a Binding, whose annotations the API server copies onto the pod). */}}
{{- define "poolguard.celCarriesFrozen" -}}
(has(object.metadata.annotations) && [{{ include "poolguard.celGuardedKeys" . }}].exists(k, k in object.metadata.annotations))
{{- end }}

{{/* True for namespace creates that name pools, and updates that change the defaults or change the labels of a namespace that has a default. */}}
{{- define "poolguard.celNamespaceRelevant" -}}
{{- $keys := "'cni.projectcalico.org/ipv4pools', 'cni.projectcalico.org/ipv6pools'" -}}
{{- $hasDefault := printf "(has(object.metadata.annotations) && [%s].exists(k, k in object.metadata.annotations))" $keys -}}
request.operation == 'CREATE' ? {{ $hasDefault }} : ([{{ $keys }}].exists(k, (has(object.metadata.annotations) && k in object.metadata.annotations) != (has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations) || (has(object.metadata.annotations) && k in object.metadata.annotations && object.metadata.annotations[k] != oldObject.metadata.annotations[k])) || ({{ $hasDefault }} && (has(object.metadata.labels) ? object.metadata.labels : {}) != (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {})))
{{- end }}

{{/* Calico mode: calico.allowedPoolAnnotations as a CEL map from namespace to the annotation values allowed there. */}}
{{- define "poolguard.celAllowedPoolAnnotations" -}}
{ {{- $first := true }}{{ range $ns, $vals := .Values.calico.allowedPoolAnnotations }}{{ if not $first }}, {{ end }}{{ $first = false }}'{{ $ns }}': [{{ range $i, $v := $vals }}{{ if $i }}, {{ end }}'{{ $v | replace "\\" "\\\\" | replace "'" "\\'" }}'{{ end }}]{{ end -}} }
{{- end }}
