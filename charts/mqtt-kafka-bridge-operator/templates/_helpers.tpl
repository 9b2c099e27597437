{{/* The release's full name, at most 63 characters. */}}
{{- define "mkb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mkb.selectorLabels" -}}
app.kubernetes.io/name: mkb-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mkb.labels" -}}
{{ include "mkb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mqtt-kafka-bridge
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mkb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mkb.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
