{{- /*
Named templates shared by the manifests. Object names are fixed (tscsi-controller, tscsi-node, ...)
rather than derived from the release name: the CSIDriver and the ClusterRoles are cluster-wide, so
one cluster holds one tscsi per driver name anyway, and fixed names are what the docs and the
kustomize manifests use.
*/ -}}

{{- /* The user and group every container but the node plugin runs as (the image's user). The
node plugin gives its sockets this group so the non-root metrics sidecar may connect. */ -}}
{{- define "tscsi.nonRootId" -}}65532{{- end }}

{{- define "tscsi.labels" -}}
app.kubernetes.io/name: tscsi
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- /* "REPO:TAG" of an image block; an empty tag falls back to the chart's appVersion. Called
with (list $ .Values.x.image). */ -}}
{{- define "tscsi.image" -}}
{{- $root := index . 0 }}{{ $img := index . 1 -}}
{{ $img.repository }}:{{ $img.tag | default $root.Chart.AppVersion }}
{{- end }}

{{- /* image and imagePullPolicy lines of a container; an empty pullPolicy follows image.pullPolicy. */ -}}
{{- define "tscsi.imageLines" -}}
{{- $root := index . 0 }}{{ $img := index . 1 -}}
image: {{ include "tscsi.image" (list $root $img) }}
imagePullPolicy: {{ $img.pullPolicy | default $root.Values.image.pullPolicy }}
{{- end }}

{{- /* The metrics sidecar's image: its own block when it names a repository, else the main image. */ -}}
{{- define "tscsi.metricsImageLines" -}}
{{- if .Values.metrics.image.repository -}}
{{ include "tscsi.imageLines" (list . .Values.metrics.image) }}
{{- else -}}
{{ include "tscsi.imageLines" (list . .Values.image) }}
{{- end }}
{{- end }}

{{- /* The node plugin's folder inside kubelet's plugins directory: its CSI and metrics sockets. */ -}}
{{- define "tscsi.pluginDir" -}}
{{ trimSuffix "/" .Values.kubeletDir }}/plugins/{{ .Values.driverName }}
{{- end }}

{{- /* The non-root container hardening, shared by every container except the node plugin. */ -}}
{{- define "tscsi.lockedDown" -}}
securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
{{- end }}

{{- define "tscsi.prometheusAnnotations" -}}
{{- if .root.Values.monitoring.scrapeAnnotations }}
annotations:
  prometheus.io/scrape: "true"
  prometheus.io/port: {{ .port | quote }}
  prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{- define "tscsi.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
