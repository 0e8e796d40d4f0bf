{{/* The chart name, overridable. */}}
{{- define "dbclaim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: the release name, plus the chart name
unless the release name already contains it. 52 characters leave room for
the longest suffix ("-manager", "-leader").
*/}}
{{- define "dbclaim.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dbclaim.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "dbclaim.labels" -}}
helm.sh/chart: {{ include "dbclaim.chart" . }}
{{ include "dbclaim.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dbclaim
{{- end }}

{{/* Labels that select the operator pods; never change them on upgrade. */}}
{{- define "dbclaim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dbclaim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dbclaim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dbclaim.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease the replicas elect their leader on. */}}
{{- define "dbclaim.leaseName" -}}
{{- printf "%s-leader" (include "dbclaim.fullname" .) }}
{{- end }}

{{- define "dbclaim.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}
