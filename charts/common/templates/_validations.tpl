{{/*
Joins the messages of a chart's validations into one failure, so a user sees every problem at once.
Each message is one line; empty messages are skipped.
Usage: {{ include "slm-common.validations.fail" (list $msg1 $msg2) }}
*/}}
{{- define "slm-common.validations.fail" -}}
{{- $messages := without . "" -}}
{{- if $messages -}}
{{- printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages) | fail -}}
{{- end -}}
{{- end -}}
