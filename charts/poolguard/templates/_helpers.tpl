{{/* Names and labels shared by every template. */}}

{{- define "poolguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The object name prefix: the release name, with the chart name unless the release already contains it. */}}
{{- define "poolguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "poolguard.webhookName" -}}{{ include "poolguard.fullname" . }}-webhook{{- end }}
{{- define "poolguard.cniName" -}}{{ include "poolguard.fullname" . }}-cni{{- end }}
{{/* The CNI installer DaemonSet's own identity: it requests the plugin's (poolguard.cniName) node-bound tokens, and may do nothing else. */}}
{{- define "poolguard.cniInstallerName" -}}{{ include "poolguard.fullname" . }}-cni-installer{{- end }}
{{- define "poolguard.cniConfigMap" -}}{{ include "poolguard.fullname" . }}-cni-config{{- end }}
{{- define "poolguard.tlsSecret" -}}{{ include "poolguard.fullname" . }}-webhook-tls{{- end }}
{{- define "poolguard.ippoolsConfigMap" -}}{{ include "poolguard.fullname" . }}-ippools{{- end }}

{{- define "poolguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "poolguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: poolguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "poolguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "poolguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "poolguard.webhookSelectorLabels" -}}
{{ include "poolguard.selectorLabels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "poolguard.cniSelectorLabels" -}}
{{ include "poolguard.selectorLabels" . }}
app.kubernetes.io/component: cni-installer
{{- end }}

{{- define "poolguard.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Namespaces no webhook or policy ever sees: the cluster's own and poolguard's, so both can heal while the webhook is down. */}}
{{- define "poolguard.excludedNamespaces" -}}
{{- $ns := list "kube-system" .Release.Namespace -}}
{{- $extra := .Values.webhook.excludedNamespaces -}}
{{- if eq .Values.mode "calico" }}{{ $extra = concat .Values.calico.excludedNamespaces $extra }}{{ end -}}
{{- range $extra }}{{ if not (has . $ns) }}{{ $ns = append $ns . }}{{ end }}{{ end -}}
{{ toJson $ns }}
{{- end }}

{{/* "true" when poolguard allocates (native mode with the allocator on): the CNI installer, the node plugin's identity and the allocator's controllers. */}}
{{- define "poolguard.allocating" -}}
{{- if and (eq .Values.mode "native") .Values.allocator.enabled }}true{{ end -}}
{{- end }}

{{/* The namespaceSelector of every namespaced webhook and policy. Keep in step with webhook.Configurations and webhook.WithNamespaceOptOut: chart_test compares them. */}}
{{- define "poolguard.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ include "poolguard.excludedNamespaces" . }}
{{- if .Values.optOut.enabled }}
  - key: ipam.poolguard.dev/opt-out
    operator: NotIn
    values: ["true"]
{{- end }}
{{- end }}

{{/* Restricted pod security for every container the chart runs unprivileged. */}}
{{- define "poolguard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "poolguard.certManagerAnnotation" -}}
{{- if eq .Values.certificates.mode "cert-manager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "poolguard.webhookName" . }}
{{- end }}
{{- end }}

{{/* The names of the pools in `ippools`, as a JSON list: the resourceNames the webhook may apply. */}}
{{- define "poolguard.ippoolNames" -}}
{{- $names := list }}
{{- range .Values.ippools }}{{ $names = append $names .name }}{{ end }}
{{- toJson $names }}
{{- end }}

{{/*
A Go duration (as time.ParseDuration reads it: "90s", "1m30s", "1.5h") in
seconds, for comparing durations; fails naming the value when it is not
one. Takes (dict "name" "allocator.gc.gracePeriod" "value" "5m").
*/}}
{{- define "poolguard.seconds" -}}
{{- $v := toString .value -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" $v) -}}
{{- fail (printf "%s is %q, not a duration such as 30s or 5m" .name $v) -}}
{{- end -}}
{{- $unit := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "ms" 1e-3 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9.]+[^0-9.]+" $v -1 -}}
{{- $n := regexFind "^[0-9.]+" . -}}
{{- $total = addf $total (mulf (float64 $n) (get $unit (trimPrefix $n .))) -}}
{{- end -}}
{{- /* Rounded to the nanosecond, the unit Go counts in. */ -}}
{{- round $total 9 -}}
{{- end }}

{{/*
Refuses, when poolguard allocates, a CNI plugin timeout the garbage
collector's grace period does not hold twice: the collector frees a slot
no claim records once it has looked so for allocator.gc.gracePeriod, an
ADD writes its claim after its slots, and an ADD that timed out leaves
them unclaimed until the runtime's retry of the same attachment, which
reuses them and may take a timeout again, writes the claim. The plugin
(ipam.gcGracePeriod) and poolguard-webhook (--gc-grace-period at least
10s, twice the shortest workable plugin timeout) hold the same rule.
The timeouts checked: each poolguard-ipam plugin's of cni.networkConfig
(its own ipam.timeout, else cni.timeout), or cni.timeout without one.
*/}}
{{- define "poolguard.checkTimeouts" -}}
{{- if include "poolguard.allocating" . -}}
{{- $graceValue := .Values.allocator.gc.gracePeriod -}}
{{- $grace := include "poolguard.seconds" (dict "name" "allocator.gc.gracePeriod" "value" $graceValue) | float64 -}}
{{- $retention := include "poolguard.seconds" (dict "name" "allocator.history.retention" "value" .Values.allocator.history.retention) | float64 -}}
{{- if lt $retention 86400.0 -}}
{{- fail (printf "allocator.history.retention (%s) is below the minimum 24h: the attribution history expires by whole UTC days; poolguard-webhook refuses such a --history-retention too" (toString .Values.allocator.history.retention)) -}}
{{- end -}}
{{- if lt $grace 10.0 -}}
{{- fail (printf "allocator.gc.gracePeriod (%s) is below the minimum 10s: it must be at least twice the CNI plugin's timeout (cni.timeout), and a timeout under 5s fails ADDs on a busy API server; poolguard-webhook refuses such a --gc-grace-period too" $graceValue) -}}
{{- end -}}
{{- $timeouts := list -}}
{{- if .Values.cni.networkConfig -}}
{{- range $i, $p := .Values.cni.networkConfig.plugins -}}
{{- if and (kindIs "map" $p.ipam) (eq (toString $p.ipam.type) "poolguard-ipam") -}}
{{- if $p.ipam.timeout -}}
{{- $timeouts = append $timeouts (dict "name" (printf "cni.networkConfig.plugins[%d].ipam.timeout" $i) "value" $p.ipam.timeout) -}}
{{- else -}}
{{- $timeouts = append $timeouts (dict "name" "cni.timeout" "value" $.Values.cni.timeout) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $timeouts = list (dict "name" "cni.timeout" "value" .Values.cni.timeout) -}}
{{- end -}}
{{- range $timeouts -}}
{{- $t := include "poolguard.seconds" . | float64 -}}
{{- if gt (mulf $t 2) $grace -}}
{{- fail (printf "%s (%s) must be at most half of allocator.gc.gracePeriod (%s): the garbage collector frees addresses no claim records after the grace period, and an ADD that timed out leaves its addresses unclaimed until the runtime's retry, which may take another timeout, records them. Lower %s to at most %s or raise allocator.gc.gracePeriod to at least %s" .name (toString .value) $graceValue .name (duration (int64 (floor (divf $grace 2)))) (duration (int64 (ceil (mulf $t 2))))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
