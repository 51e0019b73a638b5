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
