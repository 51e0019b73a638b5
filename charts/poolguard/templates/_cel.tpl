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

{{/* True for namespace creates that name pools and updates that change the defaults or the labels pools select on. */}}
{{- define "poolguard.celNamespaceRelevant" -}}
{{- $keys := "'cni.projectcalico.org/ipv4pools', 'cni.projectcalico.org/ipv6pools'" -}}
request.operation == 'CREATE' ? (has(object.metadata.annotations) && [{{ $keys }}].exists(k, k in object.metadata.annotations)) : ([{{ $keys }}].exists(k, (has(object.metadata.annotations) && k in object.metadata.annotations) != (has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations) || (has(object.metadata.annotations) && k in object.metadata.annotations && object.metadata.annotations[k] != oldObject.metadata.annotations[k])) || (has(object.metadata.labels) ? object.metadata.labels : {}) != (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}))
{{- end }}
