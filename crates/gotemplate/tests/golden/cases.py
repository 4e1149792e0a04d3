"""The golden table's source: (name, template, values.yaml text, extra defines).

confirm.py renders each case with the real `helm template` and writes golden.json.
"""

V = """
s: hello
S: Hello World
num: 3
n: 3
f: 1.5
big: 1000000
neg: -2
z: 0
t: true
fl: false
nul: null
e: ""
l: [a, b, c]
nums: [3, 1, 2]
el: []
m: {b: 2, a: 1, c: 3}
em: {}
nested: {a: {b: {c: deep}}}
list_of_maps: [{name: x, v: 1}, {name: y, v: 2}]
str_num: "42"
yes_val: yes
on_val: on
octal: 0755
hex: 0x1F
multi: |
  line1
  line2
spaced: "  padded  "
url: "https://example.com/a b?x=1&y=<2>"
ver: "1.2.3"
json: '{"a": 1, "b": [1, 2]}'
yaml: "a: 1\\nb: [x, y]\\n"
"""

CASES = []


def c(name, tpl, values=V, defs=""):
    CASES.append((name, tpl, values, defs))


# ---- text, actions, comments, trimming
c("text_plain", "plain text")
c("action_string", '{{ "hi" }}')
c("action_raw_string", "{{ `a\\nb` }}")
c("action_int", "{{ 42 }}")
c("action_neg_int", "{{ -7 }}")
c("action_float", "{{ 1.5 }}")
c("action_float_exp", "{{ 1e3 }}")
c("action_hex", "{{ 0x1F }}")
c("action_octal", "{{ 0o17 }}")
c("action_binary", "{{ 0b101 }}")
c("action_char", "{{ 'a' }}")
c("action_bool", "{{ true }} {{ false }}")
c("action_dot_map", "{{ .Values.m }}")
c("comment", "a{{/* comment */}}b")
c("comment_trim", "a  {{- /* c */ -}}  b")
c("trim_left", "a   {{- 1 }}")
c("trim_right", "{{ 1 -}}   b")
c("trim_both_newlines", "x\n\n{{- 2 -}}\n\ny")
c("no_trim_without_space", "{{ 3 }} - {{ -3 }}")
c("string_escapes", '{{ "tab\\there \\u00e9 \\x41" }}')
# ---- values and printing
c("values_string", "{{ .Values.s }}")
c("values_n_key_is_false", "{{ .Values.n }} {{ index .Values \"false\" }}")
c("values_int_is_float", "{{ .Values.num }} {{ typeOf .Values.num }}")
c("values_big_float", "{{ .Values.big }}")
c("values_float", "{{ .Values.f }}")
c("values_negative", "{{ .Values.neg }}")
c("values_bool", "{{ .Values.t }} {{ .Values.fl }}")
c("values_null", "[{{ .Values.nul }}]")
c("values_missing", "[{{ .Values.missing }}]")
c("values_missing_print", "[{{ print .Values.missing }}]")
c("values_list", "{{ .Values.l }}")
c("values_map", "{{ .Values.m }}")
c("values_nested", "{{ .Values.nested.a.b.c }}")
c("values_nested_map", "{{ .Values.nested }}")
c("values_yes_is_bool", "{{ .Values.yes_val }} {{ typeOf .Values.on_val }}")
c("values_octal", "{{ .Values.octal }}")
c("values_hex", "{{ .Values.hex }}")
c("values_multiline", "{{ .Values.multi }}")
c("values_list_of_maps", "{{ .Values.list_of_maps }}")
c("values_empty_list", "{{ .Values.el }} {{ .Values.em }}")
c("missing_nested_error", "{{ .Values.missing.x }}")
c("null_nested_error", "{{ .Values.nul.x }}")
c("paren_nil_field", "[{{ (.Values.missing).x }}]")
c("field_on_string_error", "{{ .Values.s.x }}")
c("index_missing_key", "[{{ index .Values.m \"zz\" }}]")
# ---- variables
c("var_declare", "{{ $x := 5 }}{{ $x }}")
c("var_assign", "{{ $x := 1 }}{{ $x = 2 }}{{ $x }}")
c("var_dollar", "{{ $.Values.s }}")
c("var_scope_if", "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ $y }}{{ end }}{{ $x }}")
c("var_field_chain", "{{ $m := .Values.nested }}{{ $m.a.b.c }}")
c("var_in_range", "{{ range $i, $v := .Values.l }}{{ $i }}={{ $v }};{{ end }}")
c("var_range_one", "{{ range $v := .Values.l }}{{ $v }}{{ end }}")
c("var_range_assign_outer", "{{ $last := \"\" }}{{ range .Values.l }}{{ $last = . }}{{ end }}{{ $last }}")
c("var_dollar_in_range", "{{ range .Values.l }}{{ $.Values.s }}{{ end }}")
c("var_nil_field", "{{ $x := .Values.missing }}[{{ $x.foo }}]")
# ---- if / else
c("if_true", "{{ if .Values.t }}yes{{ end }}")
c("if_false", "{{ if .Values.fl }}yes{{ else }}no{{ end }}")
c("if_else_if", "{{ if .Values.fl }}a{{ else if .Values.t }}b{{ else }}c{{ end }}")
c("if_else_if_chain", "{{ if eq .Values.s \"x\" }}1{{ else if eq .Values.s \"y\" }}2{{ else if eq .Values.s \"hello\" }}3{{ end }}")
c("if_empty_string", "{{ if .Values.e }}y{{ else }}n{{ end }}")
c("if_zero", "{{ if .Values.z }}y{{ else }}n{{ end }}")
c("if_empty_list", "{{ if .Values.el }}y{{ else }}n{{ end }}")
c("if_empty_map", "{{ if .Values.em }}y{{ else }}n{{ end }}")
c("if_nonempty_map", "{{ if .Values.m }}y{{ else }}n{{ end }}")
c("if_missing", "{{ if .Values.missing }}y{{ else }}n{{ end }}")
c("if_decl", "{{ if $x := .Values.s }}{{ $x }}{{ end }}")
# ---- with
c("with_value", "{{ with .Values.nested.a }}{{ .b.c }}{{ end }}")
c("with_else", "{{ with .Values.missing }}x{{ else }}none{{ end }}")
c("with_else_with", "{{ with .Values.missing }}x{{ else with .Values.s }}{{ . }}{{ end }}")
c("with_decl", "{{ with $v := .Values.s }}{{ $v }}{{ . }}{{ end }}")
c("with_dollar", "{{ with .Values.m }}{{ $.Values.s }}{{ end }}")
# ---- range
c("range_list", "{{ range .Values.l }}[{{ . }}]{{ end }}")
c("range_map_sorted", "{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }} {{ end }}")
c("range_map_values", "{{ range .Values.m }}{{ . }}{{ end }}")
c("range_int", "{{ range 3 }}{{ . }}{{ end }}")
c("range_int_var", "{{ range $i := 4 }}{{ $i }}{{ end }}")
c("range_else", "{{ range .Values.el }}x{{ else }}empty{{ end }}")
c("range_nil_else", "{{ range .Values.missing }}x{{ else }}nil{{ end }}")
c("range_break", "{{ range .Values.l }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}")
c("range_continue", "{{ range .Values.l }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}")
c("range_nested", "{{ range .Values.list_of_maps }}{{ .name }}:{{ range $.Values.l }}{{ . }}{{ end }};{{ end }}")
c("range_list_of_maps", "{{ range .Values.list_of_maps }}{{ .name }}={{ .v }},{{ end }}")
c("range_until", "{{ range until 3 }}{{ . }}{{ end }}")
c("range_string_error", "{{ range .Values.s }}{{ . }}{{ end }}")
c("range_float_error", "{{ range .Values.f }}{{ . }}{{ end }}")
# ---- define / template / block / include
c("define_template", '{{ template "t" . }}', defs='{{ define "t" }}T:{{ .Values.s }}{{ end }}')
c("define_template_nodata", '[{{ template "t" }}]', defs='{{ define "t" }}{{ .x }}{{ end }}')
c("define_include_pipe", '{{ include "t" . | upper }}', defs='{{ define "t" }}abc{{ end }}')
c("include_dict", '{{ include "t" (dict "a" 1 "b" "x") }}', defs='{{ define "t" }}{{ .a }}-{{ .b }}{{ end }}')
c("include_nested", '{{ include "outer" . }}', defs='{{ define "inner" }}in{{ end }}{{ define "outer" }}<{{ include "inner" . }}>{{ end }}')
c("include_missing_error", '{{ include "nope" . }}')
c("block_default", '{{ block "b" . }}default {{ .Values.s }}{{ end }}')
c("define_dollar", '{{ include "t" .Values.m }}', defs='{{ define "t" }}{{ $.a }}{{ end }}')
c("include_recursion", '{{ include "r" 3 }}', defs='{{ define "r" }}{{ . }}{{ if gt . 0 }}{{ include "r" (sub . 1) }}{{ end }}{{ end }}')
c("template_name", "{{ .Template.Name }} {{ .Template.BasePath }}")
# ---- tpl
c("tpl_basic", '{{ tpl "{{ .Values.s }}!" . }}')
c("tpl_values_string", '{{ tpl .Values.tmpl . }}', values=V + 'tmpl: "name={{ .Release.Name }}"\n')
c("tpl_define", '{{ tpl "{{ define \\"x\\" }}X{{ end }}{{ include \\"x\\" . }}" . }}')
c("tpl_uses_defines", '{{ tpl "{{ include \\"t\\" . }}" . }}', defs='{{ define "t" }}from-define{{ end }}')
c("tpl_error", '{{ tpl "{{ fail \\"boom\\" }}" . }}')
# ---- pipelines and parentheses
c("pipe_chain", "{{ .Values.s | upper | quote }}")
c("pipe_last_arg", '{{ "a" | printf "%s-%s" "b" }}')
c("paren_args", "{{ add (mul 2 3) (sub 10 4) }}")
c("paren_field", "{{ (dict \"a\" (dict \"b\" 5)).a.b }}")
c("pipe_in_paren", "{{ (.Values.s | upper) }}")
c("pipe_decl_paren", "{{ ($x := 3) }}{{ $x }}")
c("non_function_args_error", "{{ 1 2 }}")
c("undefined_function_error", "{{ nosuchfunc 1 }}")
c("unclosed_action_error", "{{ .Values.s ")
c("unexpected_end_error", "{{ end }}")
# ---- builtins: and/or/not
c("and_true", "{{ and 1 \"x\" true }}")
c("and_short", "{{ and 0 .Values.missing.x }}")
c("and_returns_falsy", "[{{ and 1 \"\" 2 }}]")
c("or_first", "{{ or 0 \"\" \"x\" }}")
c("or_short", "{{ or 1 .Values.missing.x }}")
c("or_all_false", "[{{ or 0 \"\" }}]")
c("not", "{{ not true }} {{ not \"\" }} {{ not .Values.m }}")
# ---- len / index / slice
c("len_string", '{{ len "héllo" }}')
c("len_list", "{{ len .Values.l }}")
c("len_map", "{{ len .Values.m }}")
c("len_nil_error", "{{ len .Values.missing }}")
c("len_int_error", "{{ len 3 }}")
c("index_list", "{{ index .Values.l 1 }}")
c("index_map", '{{ index .Values.m "b" }}')
c("index_nested", '{{ index .Values.nested "a" "b" "c" }}')
c("index_out_of_range", "{{ index .Values.l 10 }}")
c("index_nil_error", '{{ index .Values.missing "a" }}')
c("index_float_error", "{{ index .Values.l .Values.f }}")
c("slice_list", "{{ slice .Values.l 1 }}")
c("slice_list_2", "{{ slice .Values.l 0 2 }}")
# ---- print family
c("print_mixed", '{{ print 1 2 "a" 3 "b" "c" }}')
c("print_nil", "{{ print nil }}")
c("println", '{{ println "a" 1 }}')
c("printf_s", '{{ printf "%s" "x" }}')
c("printf_d", '{{ printf "%d" 42 }}')
c("printf_d_float", '{{ printf "%d" .Values.num }}')
c("printf_v_float", '{{ printf "%v" .Values.num }}')
c("printf_v_list", '{{ printf "%v" .Values.l }}')
c("printf_v_map", '{{ printf "%v" .Values.m }}')
c("printf_q", '{{ printf "%q" "a\\"b" }}')
c("printf_q_list", '{{ printf "%q" .Values.l }}')
c("printf_x", '{{ printf "%x %X" 255 255 }}')
c("printf_x_string", '{{ printf "%x" "hi" }}')
c("printf_o_b", '{{ printf "%o %b" 8 5 }}')
c("printf_f", '{{ printf "%f" 3.14159 }}')
c("printf_prec", '{{ printf "%.2f" 3.14159 }}')
c("printf_width", '{{ printf "%5.2f|%-6s|%6s|%05d" 3.14159 "ab" "cd" 42 }}')
c("printf_e", '{{ printf "%e %E" 1234.5678 0.00012 }}')
c("printf_g", '{{ printf "%g %g %g" 1.0 1e21 0.000001 }}')
c("printf_t", '{{ printf "%t" true }}')
c("printf_T", '{{ printf "%T %T %T %T %T" 1 1.5 "s" .Values.l .Values.m }}')
c("printf_percent", '{{ printf "100%%" }}')
c("printf_missing", '{{ printf "%s %s" "a" }}')
c("printf_extra", '{{ printf "%s" "a" "b" }}')
c("printf_bad_verb", '{{ printf "%d" "str" }}')
c("printf_s_int", '{{ printf "%s" 5 }}')
c("printf_plus", '{{ printf "%+d %+.1f" 5 2.0 }}')
c("printf_c", '{{ printf "%c" 65 }}')
c("printf_nil", '{{ printf "%v %s" nil nil }}')
c("printf_bool_v", '{{ printf "%v" .Values.t }}')
c("printf_big", '{{ printf "%v %d" .Values.big (int .Values.big) }}')
c("float_small", "{{ 0.0001 }} {{ 0.00001 }}")
c("float_large", "{{ 123456.0 }} {{ 1234567.0 }}")
# ---- html/js/urlquery
c("html_escape", '{{ html "<a href=\\"x\\">&\'</a>" }}')
c("js_escape", "{{ js \"it's <b>\\\"q\\\"</b>\" }}")
c("urlquery", '{{ urlquery "a b&c=d/é" }}')
# ---- comparisons
c("eq_strings", '{{ eq "a" "a" }} {{ eq "a" "b" }}')
c("eq_multi", '{{ eq "c" "a" "b" "c" }}')
c("eq_ints", "{{ eq 1 1 }} {{ eq (int64 2) 2 }}")
c("eq_float_value", "{{ eq .Values.num 3.0 }}")
c("eq_float_int_error", "{{ eq .Values.num 3 }}")
c("eq_nil_string", '{{ eq .Values.missing "x" }}')
c("eq_nil_nil", "{{ eq .Values.missing .Values.nul }}")
c("ne", '{{ ne "a" "b" }} {{ ne 1 1 }}')
c("lt_gt", "{{ lt 1 2 }} {{ gt 1 2 }} {{ le 2 2 }} {{ ge 1 2 }}")
c("lt_strings", '{{ lt "a" "b" }}')
c("lt_floats", "{{ lt .Values.f .Values.num }}")
c("lt_mixed_error", "{{ lt .Values.num 5 }}")
c("lt_bool_error", "{{ lt true false }}")
# ---- sprig strings
c("sprig_upper_lower", "{{ upper .Values.s }} {{ lower .Values.S }}")
c("sprig_title", '{{ title "hello wide-world foo_bar" }}')
c("sprig_untitle", '{{ untitle "Hello World" }}')
c("sprig_substr", '{{ substr 1 4 "abcdef" }}')
c("sprig_repeat", '{{ repeat 3 "ab" }}')
c("sprig_trim", "[{{ trim .Values.spaced }}]")
c("sprig_trimAll", '{{ trimAll "$" "$5.00$" }}')
c("sprig_trimSuffix", '{{ trimSuffix "-" "name-" }}')
c("sprig_trimPrefix", '{{ trimPrefix "v" "v1.2" }}')
c("sprig_trunc", '{{ trunc 5 "abcdefgh" }} {{ trunc -3 "abcdefgh" }} {{ trunc 63 "short" }}')
c("sprig_nospace", '{{ nospace "a b  c\td" }}')
c("sprig_abbrev", '{{ abbrev 5 "hello world" }}')
c("sprig_abbrevboth", '{{ abbrevboth 5 10 "1234 5678 9123" }}')
c("sprig_initials", '{{ initials "First Try" }}')
c("sprig_wrap", '{{ wrap 5 "Hello World Foo" }}')
c("sprig_wrapWith", '{{ wrapWith 5 "\\t" "Hello World" }}')
c("sprig_contains", '{{ contains "ll" "hello" }}')
c("sprig_hasPrefix", '{{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }}')
c("sprig_quote", '{{ quote "a" 1 .Values.missing true }}')
c("sprig_quote_special", '{{ quote "a\\"b\\nc" }}')
c("sprig_squote", "{{ squote \"a\" 2 }}")
c("sprig_cat", '{{ cat "a" 1 .Values.missing "b" }}')
c("sprig_indent", '{{ indent 2 "a\\nb" }}')
c("sprig_nindent", '{{ nindent 2 "a\\nb" }}')
c("sprig_replace", '{{ replace "a" "b" "banana" }}')
c("sprig_plural", '{{ plural "one" "many" 1 }} {{ plural "one" "many" 2 }}')
c("sprig_snakecase", '{{ snakecase "FirstName" }} {{ snakecase "HTTPServer" }}')
c("sprig_camelcase", '{{ camelcase "http_server" }}')
c("sprig_kebabcase", '{{ kebabcase "FirstName" }}')
c("sprig_swapcase", '{{ swapcase "This Is" }}')
c("sprig_toString", "{{ toString 5 | typeOf }} {{ toString .Values.f }} {{ toString .Values.l }}")
c("sprig_toStrings", "{{ toStrings (list 1 \"a\" 2.5) }}")
c("sprig_split", '{{ $p := split "." "a.b.c" }}{{ $p._1 }} {{ $p }}')
c("sprig_splitList", '{{ splitList "," "a,b,,c" }}')
c("sprig_splitn", '{{ splitn "," 2 "a,b,c" }}')
c("sprig_join", '{{ join "-" .Values.l }} {{ join "," (list 1 2) }}')
c("sprig_sortAlpha", "{{ sortAlpha (list \"b\" \"a\" \"C\") }}")
c("sprig_regexMatch", '{{ regexMatch "^[a-z]+$" "abc" }} {{ regexMatch "^[a-z]+$" "aB" }}')
c("sprig_regexFind", '{{ regexFind "[0-9]+" "ab123cd45" }}')
c("sprig_regexFindAll", '{{ regexFindAll "[0-9]+" "a1b22c333" -1 }} {{ regexFindAll "[0-9]" "123" 2 }}')
c("sprig_regexReplaceAll", '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}')
c("sprig_regexReplaceAllLiteral", '{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}')
c("sprig_regexSplit", '{{ regexSplit "z+" "pizza" -1 }}')
c("sprig_regexQuoteMeta", '{{ regexQuoteMeta "1.2+3" }}')
c("sprig_regex_literal_brace", '{{ regexMatch "\\\\${[a-z]+}" "${abc}" }}')
# Go's \d \w \s \b (and their negations) are ASCII-only, unlike the regex crate's defaults.
c("sprig_regex_ascii_digit", '{{ regexMatch "^\\\\d+$" "١٢٣" }} {{ regexMatch "^\\\\d+$" "123" }} {{ regexReplaceAll "\\\\D" "a١1" "_" }}')
c("sprig_regex_ascii_word", '{{ regexMatch "^\\\\w+$" "héllo" }} {{ regexFindAll "\\\\b\\\\w+\\\\b" "héllo wörld_1" -1 }} {{ regexReplaceAll "\\\\W" "a-é_b" "." }}')
c("sprig_regex_ascii_space", '{{ regexReplaceAll "\\\\s" "a\u00a0b c\td" "_" }} {{ regexReplaceAll "\\\\S+" "x\u00a0y z" "#" }}')
c("sprig_regex_ascii_class_escapes", '{{ regexReplaceAll "[\\\\W\\\\d]" "a1-é" "_" }} {{ regexReplaceAll "[^a-z\\\\d\\\\-]" "ab-1٣é" "+" }} {{ regexFindAll "[\\\\s,]+" "a, b\u00a0c" -1 }}')
c("sprig_mustRegexMatch", '{{ mustRegexMatch "a" "abc" }}')
c("sprig_mustRegexMatch_error", '{{ mustRegexMatch "(" "abc" }}')
c("sprig_b64", '{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }}')
c("sprig_b32", '{{ b32enc "hello" }} {{ b32dec "NBSWY3DP" }}')
c("sprig_sha1sum", '{{ sha1sum "abc" }}')
c("sprig_sha256sum", '{{ sha256sum "abc" }}')
c("sprig_adler32sum", '{{ adler32sum "Wikipedia" }}')
c("sprig_base_dir", '{{ base "/a/b/c.txt" }} {{ dir "/a/b/c.txt" }} {{ ext "c.tar.gz" }}')
c("sprig_clean_isAbs", '{{ clean "a//b/../c/" }} {{ isAbs "/x" }} {{ isAbs "x" }}')
c("sprig_randAlphaNum_len", "{{ randAlphaNum 10 | len }}")
c("sprig_randAlpha_len", "{{ randAlpha 7 | len }} {{ randNumeric 3 | len }} {{ randAscii 4 | len }}")
c("sprig_shuffle_len", '{{ shuffle "abcdef" | len }}')
c("sprig_uuidv4_len", "{{ uuidv4 | len }}")
# ---- sprig lists
c("sprig_list", "{{ list 1 \"a\" .Values.f }}")
c("sprig_tuple", "{{ tuple 1 2 }}")
c("sprig_first_last", "{{ first .Values.l }} {{ last .Values.l }}")
c("sprig_rest_initial", "{{ rest .Values.l }} {{ initial .Values.l }}")
c("sprig_first_empty", "[{{ first .Values.el }}]")
c("sprig_append", '{{ append .Values.l "d" }}')
c("sprig_prepend", '{{ prepend .Values.l "z" }}')
c("sprig_concat", "{{ concat .Values.l (list 1 2) }}")
c("sprig_reverse", "{{ reverse .Values.l }}")
c("sprig_uniq", "{{ uniq (list 1 2 1 \"a\" \"a\") }}")
c("sprig_without", '{{ without .Values.l "b" }}')
c("sprig_has", '{{ has "b" .Values.l }} {{ has "z" .Values.l }}')
c("sprig_compact", '{{ compact (list 1 "" 0 "a" false) }}')
c("sprig_chunk", "{{ chunk 2 (list 1 2 3 4 5) }}")
c("sprig_until", "{{ until 5 }}")
c("sprig_untilStep", "{{ untilStep 0 10 3 }}")
c("sprig_seq", "{{ seq 5 }} {{ seq 2 4 }} {{ seq 10 -3 1 }}")
c("sprig_mustFirst", "{{ mustFirst .Values.l }}")
c("sprig_mustAppend", "{{ mustAppend .Values.l 1 }}")
# ---- sprig dicts
c("sprig_dict", '{{ dict "b" 1 "a" 2 }}')
c("sprig_dict_odd", '{{ dict "a" }}')
c("sprig_get", '{{ get .Values.m "a" }} [{{ get .Values.m "zz" }}]')
c("sprig_set", '{{ $d := dict }}{{ $_ := set $d "k" "v" }}{{ $d }}')
c("sprig_set_shared", '{{ $d := dict "x" (dict) }}{{ $i := $d.x }}{{ $_ := set $i "k" 1 }}{{ $d }}')
c("sprig_unset", '{{ $d := dict "a" 1 "b" 2 }}{{ $_ := unset $d "a" }}{{ $d }}')
c("sprig_hasKey", '{{ hasKey .Values.m "a" }} {{ hasKey .Values.m "z" }}')
c("sprig_hasKey_nil", '{{ hasKey .Values.missing "a" }}')
c("sprig_pluck", '{{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }}')
c("sprig_keys_sorted", "{{ keys .Values.m | sortAlpha }}")
c("sprig_values_len", "{{ values .Values.m | len }}")
c("sprig_pick", '{{ pick .Values.m "a" "c" }}')
c("sprig_omit", '{{ omit .Values.m "a" }}')
c("sprig_merge", '{{ merge (dict "a" 1 "n" (dict "x" 1)) (dict "a" 2 "b" 3 "n" (dict "y" 2)) }}')
c("sprig_merge_empty_dst", '{{ merge (dict "a" "") (dict "a" "x") }}')
c("sprig_mergeOverwrite", '{{ mergeOverwrite (dict "a" 1 "n" (dict "x" 1)) (dict "a" 2 "n" (dict "x" 5)) }}')
c("sprig_merge_mutates", '{{ $d := dict "a" 1 }}{{ $_ := merge $d (dict "b" 2) }}{{ $d }}')
c("sprig_deepCopy", '{{ $a := dict "x" (dict "y" 1) }}{{ $b := deepCopy $a }}{{ $_ := set $b.x "y" 2 }}{{ $a }} {{ $b }}')
c("sprig_dig", '{{ dig "a" "b" "c" "dflt" .Values.nested }} {{ dig "a" "zz" "dflt" .Values.nested }}')
c("sprig_dict_nested_access", '{{ $d := dict "a" (dict "b" "c") }}{{ $d.a.b }}')
# ---- math
c("sprig_add", "{{ add 1 2 3 }} {{ add .Values.num 1 }} {{ typeOf (add 1 1) }}")
c("sprig_add1", "{{ add1 5 }}")
c("sprig_sub", "{{ sub 10 3 }}")
c("sprig_mul", "{{ mul 2 3 4 }}")
c("sprig_div", "{{ div 7 2 }}")
c("sprig_div_zero_error", "{{ div 1 0 }}")
c("sprig_mod", "{{ mod 7 3 }}")
c("sprig_max_min", "{{ max 1 5 3 }} {{ min 4 2 8 }} {{ biggest 1 9 }}")
c("sprig_float_math", "{{ addf 1.5 2 }} {{ subf 5 1.5 }} {{ mulf 1.5 2 }} {{ divf 7 2 }}")
c("sprig_maxf_minf", "{{ maxf 1 2.5 }} {{ minf 1 2.5 }}")
c("sprig_floor_ceil", "{{ floor 1.7 }} {{ ceil 1.2 }}")
c("sprig_round", "{{ round 3.14159 2 }} {{ round 2.5 0 }}")
c("sprig_add1f", "{{ add1f 1.5 }}")
c("sprig_int", '{{ int "42" }} {{ int 3.9 }} {{ typeOf (int .Values.f) }} {{ int "abc" }}')
c("sprig_int64", '{{ int64 .Values.num | typeOf }} {{ int64 "7" }}')
c("sprig_float64", '{{ float64 "1.25" }} {{ float64 3 | typeOf }}')
c("sprig_atoi", '{{ atoi "12" }} {{ atoi "x" }}')
c("sprig_toDecimal", '{{ toDecimal "0777" }}')
c("sprig_randInt_range", "{{ $r := randInt 5 6 }}{{ $r }}")
# ---- defaults
c("sprig_default", '{{ default "d" .Values.missing }} {{ default "d" .Values.e }} {{ default "d" .Values.s }}')
c("sprig_default_zero", "{{ default 5 .Values.z }} {{ default 5 .Values.fl }}")
c("sprig_default_pipe", '{{ .Values.missing | default "x" }}')
c("sprig_empty", "{{ empty .Values.e }} {{ empty .Values.m }} {{ empty .Values.em }} {{ empty .Values.z }}")
c("sprig_coalesce", '{{ coalesce .Values.missing .Values.e "c" }}')
c("sprig_all_any", '{{ all 1 "a" true }} {{ all 1 "" }} {{ any 0 "" "x" }} {{ any 0 "" }}')
c("sprig_ternary", '{{ ternary "y" "n" true }} {{ ternary "y" "n" .Values.fl }}')
c("helm_required_ok", '{{ required "need s" .Values.s }}')
c("helm_required_error", '{{ required "s2 is required" .Values.s2 }}')
c("helm_required_empty_error", '{{ required "e is required" .Values.e }}')
c("helm_fail_error", '{{ fail "custom failure" }}')
# ---- reflection
c("sprig_typeOf", "{{ typeOf .Values.s }} {{ typeOf .Values.l }} {{ typeOf .Values.m }} {{ typeOf .Values.missing }}")
c("sprig_typeIs", '{{ typeIs "string" .Values.s }} {{ typeIs "float64" .Values.num }} {{ typeIs "int" 1 }}')
c("sprig_typeIsLike", '{{ typeIsLike "string" "x" }}')
c("sprig_kindOf", "{{ kindOf .Values.l }} {{ kindOf .Values.m }} {{ kindOf 1 }} {{ kindOf .Values.missing }}")
c("sprig_kindIs", '{{ kindIs "map" .Values.m }} {{ kindIs "slice" .Values.l }} {{ kindIs "invalid" .Values.missing }} {{ kindIs "bool" .Values.t }}')
c("sprig_deepEqual", '{{ deepEqual (list 1 2) (list 1 2) }} {{ deepEqual (dict "a" 1) (dict "a" 2) }}')
# ---- semver
c("sprig_semverCompare", '{{ semverCompare ">=1.2.0" "1.2.3" }} {{ semverCompare "<1.0" "1.2.3" }}')
c("sprig_semverCompare_caret", '{{ semverCompare "^1.2" "1.9.0" }} {{ semverCompare "^1.2" "2.0.0" }}')
c("sprig_semverCompare_tilde", '{{ semverCompare "~1.2.3" "1.2.9" }} {{ semverCompare "~1.2.3" "1.3.0" }}')
c("sprig_semverCompare_pre", '{{ semverCompare ">=1.21-0" "v1.33.0" }} {{ semverCompare ">=1.21" "1.22.0-rc.1" }} {{ semverCompare ">=1.21-0" "1.22.0-rc.1" }}')
c("sprig_semverCompare_or", '{{ semverCompare "<1.0 || >=2.0" "2.1.0" }} {{ semverCompare ">1.0, <2.0" "1.5.0" }}')
c("sprig_semverCompare_wild", '{{ semverCompare "1.2.x" "1.2.7" }} {{ semverCompare "1.x" "2.0.0" }}')
c("sprig_semverCompare_hyphen", '{{ semverCompare "1.1 - 1.3" "1.2.0" }} {{ semverCompare "1.1 - 1.3" "1.4.0" }}')
c("sprig_semverCompare_kube", '{{ semverCompare ">=1.19-0" .Capabilities.KubeVersion.GitVersion }}')
c("sprig_semver_fields", '{{ $v := semver "1.2.3-beta.1+build" }}{{ $v.Major }} {{ $v.Minor }} {{ $v.Patch }} {{ $v.Prerelease }} {{ $v.Metadata }}')
c("sprig_semverCompare_error", '{{ semverCompare ">=1.2" "not-a-version" }}')
# ---- dates (deterministic forms only)
c("sprig_date_epoch", '{{ date "2006-01-02 15:04:05" 0 }}')
c("sprig_date_layouts", '{{ date "Jan _2 Mon 03:04PM" 86400 }}')
c("sprig_dateInZone", '{{ dateInZone "2006-01-02T15:04:05Z07:00" 1000000000 "UTC" }}')
c("sprig_htmlDate", "{{ htmlDate 1600000000 }}")
c("sprig_duration", '{{ duration 3725 }} {{ duration 0 }} {{ duration 59 }}')
c("sprig_toDate", '{{ toDate "2006-01-02" "2020-03-04" | date "02/01/2006" }}')
c("sprig_dateModify", '{{ toDate "2006-01-02" "2020-03-04" | dateModify "48h" | date "2006-01-02" }}')
c("sprig_unixEpoch", '{{ toDate "2006-01-02" "2020-03-04" | unixEpoch }}')
c("sprig_now_type", "{{ now | typeOf }}")
# ---- helm serialization
c("helm_toYaml_map", "{{ toYaml .Values.m }}")
c("helm_toYaml_nested", "{{ toYaml .Values.nested }}")
c("helm_toYaml_list", "{{ toYaml .Values.l }}")
c("helm_toYaml_list_of_maps", "{{ toYaml .Values.list_of_maps }}")
c("helm_toYaml_scalars", '{{ toYaml (dict "t" true "s" "true" "n" "123" "f" 1.5 "i" 3 "e" "" "z" nil "big" .Values.big) }}')
c("helm_toYaml_quoting", '{{ toYaml (dict "a" "x: y" "b" "- z" "c" "#c" "d" "yes" "e" "1e3" "f" "@x" "g" " lead" "h" "trail " "i" "a#b" "j" "*" "k" "~" "l" "0x10") }}')
c("helm_toYaml_multiline", '{{ toYaml (dict "m" "a\\nb\\n" "n" "a\\nb" "o" "a\\n\\n" "p" " x\\ny") }}')
c("helm_toYaml_long_string", '{{ toYaml (dict "long" "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr") }}')
c("helm_toYaml_key_order", '{{ toYaml (dict "a10" 1 "a9" 2 "a" 3 "B" 4 "b" 5 "1" 6 "_x" 7) }}')
c("helm_toYaml_empty", "{{ toYaml .Values.em }} {{ toYaml .Values.el }} {{ toYaml .Values.missing }}")
c("helm_toYaml_nested_lists", "{{ toYaml (list (list 1 2) (list) (dict)) }}")
c("helm_toYaml_string", '{{ toYaml "plain" }} {{ toYaml "true" }}')
c("helm_toYaml_special_chars", '{{ toYaml (dict "tab" "a\\tb" "q" "it\'s" "dq" "say \\"hi\\"" "u" "é") }}')
c("helm_toYamlPretty", "{{ toYamlPretty .Values.list_of_maps }}")
c("helm_toYaml_nindent", "x:{{ toYaml .Values.m | nindent 2 }}")
c("helm_toJson_map", "{{ toJson .Values.m }}")
c("helm_toJson_html", '{{ toJson "<a&b>" }}')
c("helm_toJson_numbers", "{{ toJson (list .Values.num .Values.f .Values.big 1 1e21) }}")
c("helm_toJson_nested", "{{ toJson .Values.list_of_maps }}")
c("helm_toRawJson", '{{ toRawJson (dict "a" "<b>") }}')
c("helm_toPrettyJson", "{{ toPrettyJson .Values.nested }}")
c("helm_fromJson", '{{ $j := fromJson .Values.json }}{{ $j.a }} {{ index $j.b 1 }} {{ typeOf $j.a }}')
c("helm_fromJson_error", '{{ fromJson "{bad" }}')
c("helm_fromJsonArray", '{{ fromJsonArray "[1, \\"a\\"]" }}')
c("helm_fromYaml", "{{ $y := fromYaml .Values.yaml }}{{ $y.a }} {{ $y.b }} {{ typeOf $y.a }}")
c("helm_fromYaml_error", '{{ fromYaml "a: [" }}')
c("helm_fromYamlArray", '{{ fromYamlArray "- 1\\n- b\\n" }}')
c("helm_toToml", '{{ toToml (dict "a" 1 "b" "x") }}')
c("helm_fromToml", '{{ $t := fromToml "a = 1\\nb = \\"x\\"\\n" }}{{ $t.a }} {{ $t.b }}')
c("helm_fromToml_unterminated_string", '{{ hasKey (fromToml "a = 1\\nb = \\"\\n") "Error" }}')
c("helm_lookup_empty", '{{ lookup "v1" "Secret" "ns" "name" }} {{ len (lookup "v1" "Pod" "" "") }}')
# ---- helm built-in objects
c("helm_release", "{{ .Release.Name }} {{ .Release.Namespace }} {{ .Release.IsInstall }} {{ .Release.IsUpgrade }} {{ .Release.Revision }} {{ .Release.Service }}")
c("helm_chart", "{{ .Chart.Name }} {{ .Chart.Version }} {{ .Chart.AppVersion }} {{ .Chart.APIVersion }} {{ .Chart.IsRoot }}")
c("helm_capabilities_kube", "{{ .Capabilities.KubeVersion }} {{ .Capabilities.KubeVersion.Version }} {{ .Capabilities.KubeVersion.Major }} {{ .Capabilities.KubeVersion.Minor }} {{ .Capabilities.KubeVersion.GitVersion }}")
c("helm_capabilities_apis", '{{ .Capabilities.APIVersions.Has "apps/v1" }} {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }} {{ .Capabilities.APIVersions.Has "policy/v1" }}')
c("helm_files_get", '{{ .Files.Get "files/a.txt" }}')
c("helm_files_get_missing", '[{{ .Files.Get "nope" }}]')
c("helm_files_lines", '{{ range .Files.Lines "files/a.txt" }}<{{ . }}>{{ end }}')
c("helm_files_glob_asconfig", '{{ (.Files.Glob "files/*").AsConfig }}')
c("helm_files_glob_assecrets", '{{ (.Files.Glob "files/*.txt").AsSecrets }}')
c("helm_files_glob_empty", '{{ if .Files.Glob "nothing/*" }}y{{ else }}n{{ end }}')
c("helm_files_glob_range", '{{ range $p, $_ := .Files.Glob "files/**" }}{{ $p }};{{ end }}')
c("helm_files_getbytes", '{{ .Files.GetBytes "files/b.conf" | toString }}')
c("helm_subcharts_empty", "{{ .Subcharts }}")
c("helm_values_global", "[{{ .Values.global }}]")
# ---- misc Go semantics
c("nested_define_scope", '{{ $x := "outer" }}{{ include "t" . }}{{ $x }}', defs='{{ define "t" }}{{ $x := "inner" }}{{ $x }}{{ end }}')
c("whitespace_block", "a\n{{- if true }}\n  b\n{{- end }}\nc")
c("range_map_of_lists", '{{ range $k, $v := dict "x" (list 1 2) "a" (list 3) }}{{ $k }}:{{ len $v }} {{ end }}')
c("dot_in_with_range", "{{ with .Values.m }}{{ range $k, $v := . }}{{ $k }}{{ end }}{{ end }}")
c("chain_function_result", '{{ (index .Values.list_of_maps 1).name }}')
c("method_call_with_args", '{{ .Capabilities.APIVersions.Has "v1" | not }}')
c("print_map_in_list", "{{ list (dict \"a\" 1) }}")
c("no_value_replaced", "a{{ .Values.nope }}b")
c("int_literal_overflow_error", "{{ 99999999999999999999 }}")
c("bad_number_error", "{{ 1x }}")
c("variable_undefined_error", "{{ $nope }}")
c("if_missing_end_error", "{{ if true }}x")
c("else_outside_error", "{{ else }}")
c("break_outside_range_error", "{{ break }}")
c("set_string_value_with_quotes", '{{ "a \\"quoted\\" word" }}')
c("printf_width_star", '{{ printf "%*d|%-*d|" 5 42 4 7 }}')
c("printf_unicode_q", '{{ printf "%q" "é\\u2028" }}')
c("sprig_substr_negative", '{{ substr -1 3 "abcdef" }} {{ substr 2 -1 "abcdef" }}')
c("sprig_trunc_multibyte", '{{ trunc 2 "héllo" }}')
c("sprig_join_nil", "{{ join \",\" (list 1 .Values.missing 2) }}")
c("sprig_quote_float", "{{ quote .Values.f }} {{ quote .Values.big }}")
c("sprig_toString_big", "{{ toString .Values.big }}")
c("sprig_int_big", "{{ int .Values.big }}")
c("sprig_add_floats_truncate", "{{ add 1.9 1.9 }}")
c("eq_int_int64", "{{ eq 1 (add 0 1) }}")
c("len_unicode", '{{ len "日本" }}')
c("index_string", '{{ index "abc" 1 }}')
c("printf_s_list_of_ints", '{{ printf "%s" (list 1 2) }}')
c("printf_v_nested_map", '{{ printf "%v" .Values.nested }}')
c("printf_d_list", '{{ printf "%d" (list 1 2) }}')
c("printf_05_2f_neg", '{{ printf "%06.2f" -3.14159 }}')
c("printf_x_neg", '{{ printf "%x" -255 }}')
c("printf_sharp_x", '{{ printf "%#x %#o" 255 8 }}')
c("printf_g_prec", '{{ printf "%.3g %.3g %.10g" 1234.5678 0.00012345 1.5 }}')
c("printf_e_zero", '{{ printf "%e" 0.0 }}')
c("printf_v_neg_float", '{{ printf "%v" -0.5 }}')
c("printf_q_int", "{{ printf \"%q\" 65 }}")
c("float_neg_exp", "{{ 0.000012 }} {{ -1e7 }}")
c("float_integral", "{{ 2.0 }} {{ 100.0 }}")
c("sprig_list_nil_print", "{{ list nil 1 }}")
c("sprig_dict_int_keys", '{{ dict 1 "a" 2 "b" }}')
c("sprig_merge_deep3", '{{ merge (dict "a" (dict "b" (dict "c" 1))) (dict "a" (dict "b" (dict "d" 2))) | toJson }}')
c("sprig_regexReplaceAll_group_names", '{{ regexReplaceAll "(?P<first>\\\\w+) (?P<last>\\\\w+)" "John Smith" "${last}, ${first}" }}')
c("sprig_regexFind_none", '[{{ regexFind "z" "abc" }}]')
c("sprig_splitList_empty_sep", '{{ splitList "" "abc" }}')
c("sprig_replace_empty_old", '{{ replace "" "-" "ab" }}')
c("sprig_title_apostrophe", "{{ title \"don't stop\" }}")
c("sprig_upper_unicode", '{{ upper "straße" }}')
c("helm_toYaml_float_values", '{{ toYaml (dict "a" 0.5 "b" 1e-7 "c" 12345678.5 "d" -0.0) }}')
c("helm_toYaml_bool_strings", '{{ toYaml (list "y" "n" "on" "off" "null" "~" "Yes" "NO") }}')
c("helm_toYaml_numeric_strings", '{{ toYaml (list "0" "1.0" "-1" "0755" "1_000" "1:20" ".5" "1e5" "+1") }}')
c("helm_toJson_special_floats_ints", "{{ toJson (list 0.1 100 -5 3.0) }}")
c("helm_toJson_unicode_escape", '{{ toJson "a\\u2028b\\tc" }}')
c("helm_toPrettyJson_empty", "{{ toPrettyJson .Values.em }} {{ toPrettyJson .Values.el }}")
c("helm_include_in_tpl_values", '{{ tpl (toYaml (dict "k" "{{ .Values.s }}")) . }}')
c("helm_tpl_dollar", '{{ tpl "{{ $.Values.s }}" . }}')
c("helm_tpl_template_name", '{{ tpl "{{ .Template.Name }}" . }}')
c("helm_required_pipe", '{{ .Values.s | required "x" | upper }}')
c("helm_fail_in_include_error", '{{ include "f" . }}', defs='{{ define "f" }}{{ fail "inner fail" }}{{ end }}')
c("helm_tpl_nil_values_error", '{{ tpl .Values.missing . }}')
c("helm_capabilities_helmversion", "{{ .Capabilities.HelmVersion.Version }}")
c("helm_chart_maintainers", "{{ .Chart.Maintainers }} {{ .Chart.Keywords }}")
c("helm_values_set_types", "{{ typeOf .Values.num }} {{ typeOf .Values.str_num }}")
c("go_comment_only", "{{/* only a comment */}}")
c("go_empty_pipeline_decl", "{{ $a := list }}{{ $a = append $a 1 }}{{ $a = append $a 2 }}{{ $a }}")
c("go_range_over_keys", "{{ range keys .Values.m | sortAlpha }}{{ . }}{{ end }}")
c("go_with_nil_else_if", "{{ if .Values.missing }}a{{ else if not .Values.e }}b{{ end }}")
c("go_and_or_mixed", '{{ if and (or .Values.fl .Values.t) (not .Values.e) }}ok{{ end }}')
c("go_nested_paren_pipes", '{{ (printf "%s-%s" (.Values.s | upper) ("x" | quote)) | lower }}')
c("go_trailing_newline_kept", "a\n{{ 1 }}\n")
c("go_eq_bool", "{{ eq .Values.t true }}")
c("go_ne_nil", "{{ ne .Values.missing nil }}")
c("go_lt_int_int64", "{{ lt 1 (int64 2) }}")
c("go_index_map_int_key_error", "{{ index .Values.m 1 }}")
c("go_field_on_int_error", "{{ $x := 1 }}{{ $x.foo }}")
c("go_dot_field_in_template_call", '{{ template "t" .Values.nested }}', defs='{{ define "t" }}{{ .a.b.c }}{{ end }}')
c("go_template_dollar_is_arg", '{{ template "t" "arg" }}', defs='{{ define "t" }}{{ $ }}{{ end }}')
c("go_redefine_later_wins", '{{ template "t" }}', defs='{{ define "t" }}first{{ end }}{{ define "t" }}second{{ end }}')
c("go_break_nested_if", "{{ range until 5 }}{{ if gt . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}")
c("go_continue_with_else", "{{ range .Values.nums }}{{ if eq . 1.0 }}{{ continue }}{{ end }}{{ . }}{{ end }}")
c("go_range_var_scope_reset", "{{ range $i, $e := .Values.l }}{{ $x := $i }}{{ $x }}{{ end }}")
c("go_print_bool_spacing", "{{ print true false \"s\" 1 }}")
c("go_println_spacing", '{{ println "a" "b" }}')
c("go_char_escape", "{{ '\\n' }} {{ '\\'' }}")
c("go_raw_string_backslash", "{{ `a\\b` }}")
c("go_number_underscore", "{{ 1_000 }}")
c("go_hex_float", "{{ 0x1p4 }}")
c("go_negative_float", "{{ -1.5 }}")
c("go_nil_arg", "{{ printf \"%v\" nil }}")
c("go_nil_command_error", "{{ nil }}")
c("go_variable_shadow", "{{ $x := 1 }}{{ with .Values.m }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}")

# ---- sprig crypto. Keys, certificates, bcrypt salts and AES IVs are random: those outputs are
# checked by shape (the certificates' contents are checked field by field against openssl in
# crates/helm/tests/crypto.rs). derivePassword, decryptAES and the PEM re-encoding of a given
# key are deterministic and compared exactly.
VK = V + """rsa8: |
  -----BEGIN PRIVATE KEY-----
  MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC3uf+ialQt++5S
  z3tugXKJQOXIw5tDC3Uc8uR5thLA4REvWpsRAg51Z8NMyAWefACvTi3W5dlxMsBE
  sb+L704uOBITF99DwG73qEvtG0Vm8XsFQzHAZJmZ4Oc9Kz+lfOw9Ab/mwzhuozQ5
  OWPLW9OHxOQ6huMl5ROCXiQDjAmgoTRXEFXtemV6WK8FBPYaQK0JrU3ldVQOmDFf
  lD4hG5k/h0VFICoHKLeyvfk8WvT8MmGj/TTLrluhrNhoZcadFiL85knYYq6bUE7E
  pkGjaw5Pjpg0OiCQd9J4pYiBYNbiZOc/+2nbaQwGYaFpbbpFUPezN2LIoC4jHN5r
  Loej6kcXAgMBAAECggEAQo45od984S+bdRo+b5irIjeFRkY973quES+YPtMLVh3y
  OMJM3Etva26MXDs1deUb5mWey3N2YsBs0DXH2ux02N9tBMeoFIYYbNTltF4ltRYT
  Z6Og2T5YOlszyX/qTYvElJEWsITV45Zxq60zjo6UQWG8/8qvbKHggGCUEUjgj/RX
  69W92xY+8YT9neyIf10NsNC2IvvH/jEaUfhykKZYZT6ng5IUhllq8ckjyCCP0/8W
  C2YrlJ6Ui04X4VmQU8sRbSG76FKJvkj0B/zeK0Rp8LOCXAxaqOTdtQ4w+/Q8Sa2/
  0m1yZJm86pypbYCyycWHJ7WbSZuAQC4SZf/Zm3gckQKBgQDwL7GW8uSCSWNh3akJ
  h3Q3r8oi8a5iJTbwmz9nhv+wVDkqTBsVCWPZz9q3bMz3n0zFOho2WNHWe3GzhIcC
  32jCt/JxHT/quaq3U3LLCkDrpFHgOIL3hoI+mwBamUJRdtq48H4Om7eYAcFDLHMm
  zQKnpZox8oZtdFHoZgBUzHB57wKBgQDD0q8M8+ulBNAshnP5/ReEvWvVHJ/H/48/
  dh0gmtqg/W5Lmg7cdkUgtOAn/kjcMvOr75rSxNUROOD5cMRs1iwKvzg4rYXWxnSO
  xfTuRxlzq3g1QSlKhH30dgg7WgHbdXWy0kCr5QRpi0HVNKRlGQuRB3hjaA0d0by1
  3ERXJQ1NWQKBgB4SCozYeg1pvLyK8NfVkpJKOudnFKsK97bl6OlAOJDN6p5GCvn2
  Q/8IC9z9DShPVGA45wE424Sbzd9ozzJn4AjI2Nyaid8MQbhUBUIwVXJrDykgSh1N
  RM8rvr6ZA3mJhNa0nUOc8T5hsd2EGiKYdiWhEQ4BzBy1/G85Hf9/3PEXAoGBAI7I
  jk8ZhBbc/ZWZq/L58i4dmATaTD8ePqr9Spu9jfCZGdUSTge+TQVeHZvLtACrPjV+
  Dhvk3Z8jJBd9fBwHxjFH4IyjKdXC+rYn7UHYodxPiOT70Em/db/MWJA+PuBwMxPi
  brln0eHLYoM9USlOK7riAYwqEHZPuhO4ujP4lkxxAoGBAKRh34wm1XR7n6uEtUzc
  6FF40NcRgWSrjO2tDl8fDDXHjhwF6U9P0ETB5PkyEI5n/uQGafe0lWDPDkT3idHr
  gUow/mf6EUJj6Q78SQ7BSSu5V3a0rrVkbTNkUR/0d5zEaT1rDswCgHzjZvhtxC/K
  hcw02ZEYcQPNOhxaUU1OQ2H+
  -----END PRIVATE KEY-----
ec8: |
  -----BEGIN PRIVATE KEY-----
  MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgx8PqqZTvWtzAyYpW
  E/Lzq748Nd/FeDEt8lgwjM3t72qhRANCAARK9pvF7JE9KSkatu/wQo5Aemdtrqwb
  1njr5HD88bsVbysDeQIyr3tsa6OsKEPrl2qS7FARE7MVkHziKmnNz4ou
  -----END PRIVATE KEY-----
ec384: |
  -----BEGIN EC PRIVATE KEY-----
  MIGkAgEBBDB1kaKSS9vhsX/K4oVLRbRRXmUVuuAnAisKWUk06NBisnW1MF3G/YXL
  PQprMmQzdLugBwYFK4EEACKhZANiAASkCOjt8YbG+5SIv3cFDHET6w+BnBhUk+z+
  T0lMKJFIFQZBOpI3SlD4dW1Xf4HnmeBwU84kEfBfMLEp+YWNW8PdfOA3RvigEE6c
  2N3U5PnVIs5kLxSXiztv2zk2+9mpzFA=
  -----END EC PRIVATE KEY-----
ed: |
  -----BEGIN PRIVATE KEY-----
  MC4CAQAwBQYDK2VwBCIEIFBK5qio5oaCzipfYlxMVm37yCaYCWGv+318bPNwD/Cz
  -----END PRIVATE KEY-----
"""
c("sprig_derivePassword_long", '{{ derivePassword 1 "long" "password" "user" "example.com" }}')
# derivePassword runs scrypt (N=32768, r=8, p=2) per call: seconds in a debug build.
c("sprig_derivePassword_maximum", '{{ derivePassword 3 "maximum" "pw" "ü" "site" }}')
c("sprig_derivePassword_unknown", '{{ derivePassword 1 "nope" "p" "u" "s" }}')
c("sprig_decryptAES", '{{ decryptAES "secretkey" "Xm/MPbKqFxtqTOAvzNbzrkYG8b4WRoc9x+aZ0QAeqco=" }}|'
  '{{ decryptAES "a-very-long-password-longer-than-thirty-two-bytes" "gcNAha+PqpyYtaAfu2NbNIj1HBjoV8Z0q0AbGY2JaKnPrZkg2AD6Fh9k0pG3Reb2" }}|'
  '{{ decryptAES "" "5MJ0NrmZ/MhgKUXDVaTaJZKE77faKpc+ybaDrOZ6Tos=" }}')
c("sprig_decryptAES_empty", '[{{ decryptAES "k" "" }}][{{ encryptAES "k" "" }}]')
c("sprig_encryptAES_shape", '{{ encryptAES "k" "hello" | len }} {{ encryptAES "k" "exactly16bytes!!" | len }}')
c("sprig_encryptAES_roundtrip", '{{ encryptAES "k" "round trip ü" | decryptAES "k" }}')
c("sprig_decryptAES_bad_base64", '{{ decryptAES "k" "!!!!" }}')
c("sprig_decryptAES_bad_padding", '{{ decryptAES "k" "YWJjZA=" }}')
c("sprig_decryptAES_short", '{{ decryptAES "k" "YWJj" }}')
c("sprig_decryptAES_one_block", '{{ decryptAES "k" "YWJjZGVmZ2hpamtsbW5vcA==" }}')
c("sprig_decryptAES_partial_block", '{{ decryptAES "k" "YWJjZGVmZ2hpamtsbW5vcHFy" }}')
c("sprig_decryptAES_wrong_key", '{{ decryptAES "wrong" "Xm/MPbKqFxtqTOAvzNbzrkYG8b4WRoc9x+aZ0QAeqco=" }}')
c("sprig_htpasswd_shape", '{{ $h := htpasswd "user" "pass" }}{{ len $h }} {{ trunc 12 $h }}')
c("sprig_htpasswd_invalid_user", '{{ htpasswd "us:er" "p" }}')
c("sprig_htpasswd_too_long", '{{ htpasswd "u" (repeat 73 "x") }}')
c("sprig_bcrypt_shape", '{{ bcrypt "x" | len }} {{ bcrypt "x" | trunc 7 }} {{ bcrypt (repeat 72 "x") | len }}')
c("sprig_genPrivateKey_shape", '{{ genPrivateKey "ecdsa" | len }} {{ genPrivateKey "ed25519" | len }} '
  '{{ genPrivateKey "rsa" | trunc 31 }} {{ genPrivateKey "" | regexFind "-----END [A-Z ]+-----" }}')
c("sprig_genPrivateKey_unknown", '{{ genPrivateKey "x" }}')
c("sprig_genCA_shape", '{{ $ca := genCA "ca" 365 }}{{ typeOf $ca }} {{ kindOf $ca }} {{ $ca.Cert | trunc 27 }} '
  '{{ $ca.Key | trunc 31 }} {{ $ca | toJson | fromJson | keys | sortAlpha }} {{ printf "%v" $ca | trunc 28 }}')
c("sprig_genSelfSignedCert_shape", '{{ $c := genSelfSignedCert "*.x" (list "10.0.0.1" "::1") (list "a" "b") 30 }}'
  '{{ typeOf $c }} {{ $c.Cert | regexFind "-----END [A-Z ]+-----" }} {{ $c.Key | trunc 31 }}')
c("sprig_genSignedCert_shape", '{{ $ca := genCA "ca" 1 }}{{ $c := genSignedCert "s" (list "1.2.3.4") (list "a") 1 $ca }}'
  '{{ typeOf $c }} {{ $c.Cert | trunc 27 }} {{ $c.Key | trunc 31 }}')
c("sprig_genSignedCertWithKey_ec_ca", '{{ $ca := genCAWithKey "ca" 1 .Values.ec8 }}'
  '{{ $c := genSignedCertWithKey "s" nil (list "a") 1 $ca .Values.ed }}{{ $c.Key | eq .Values.ed }} {{ $c.Cert | trunc 27 }}', VK)
c("sprig_withKey_key_pem", '{{ (genCAWithKey "x" 1 .Values.rsa8).Key }}|{{ (genCAWithKey "x" 1 .Values.ec8).Key }}|'
  '{{ (genSelfSignedCertWithKey "x" nil nil 1 .Values.ed).Key }}|{{ (genSelfSignedCertWithKey "x" nil nil 1 .Values.ec384).Key }}', VK)
c("sprig_genSelfSignedCert_bad_ip", '{{ genSelfSignedCert "x" (list "nope") nil 1 }}')
c("sprig_genSelfSignedCert_ip_not_string", '{{ genSelfSignedCert "x" (list 1) nil 1 }}')
c("sprig_genSelfSignedCert_dns_not_string", '{{ genSelfSignedCert "x" nil (list true) 1 }}')
c("sprig_genCAWithKey_bad_pem", '{{ genCAWithKey "x" 1 "nope" }}')
c("sprig_genCAWithKey_not_a_key", '{{ genCAWithKey "x" 1 (genCA "y" 1).Cert }}')
c("sprig_genSignedCert_not_a_cert", '{{ genSignedCert "x" nil nil 1 (dict "Cert" "a" "Key" "b") }}')
c("sprig_genSignedCert_key_mismatch", '{{ $a := genCA "a" 1 }}{{ $b := buildCustomCert ($a.Cert | b64enc) (.Values.ed | b64enc) }}'
  '{{ genSignedCert "x" nil nil 1 $b }}', VK)
c("sprig_buildCustomCert", '{{ $ca := genCA "a" 1 }}{{ $c := buildCustomCert ($ca.Cert | b64enc) ($ca.Key | b64enc) }}'
  '{{ eq $c.Cert $ca.Cert }} {{ eq $c.Key $ca.Key }} {{ typeOf $c }}')
c("sprig_buildCustomCert_bad_base64", '{{ buildCustomCert "!!" "" }}')
c("sprig_buildCustomCert_not_pem", '{{ buildCustomCert ("x" | b64enc) ("y" | b64enc) }}')

# ---- sprig urlParse / urlJoin: Go's net/url Parse and URL.String
VU = V + """urls:
  - "https://user:p%40ss@example.com:8443/a%2Fb/c?x=1&y=a+b#frag"
  - "https://us%20er:pa:ss@example.com/"
  - "http://:pw@host/"
  - "http://a@b@c/"
  - "http://[fe80::1%25en0]:8080/p"
  - "http://[::1]/"
  - "http://[::ffff:1.2.3.4]:443"
  - "https://example.com"
  - "https://example.com?"
  - "https://example.com/a b?q=a b#f g"
  - "https://example.com/p#a#b"
  - "https://example.com/p#%41%20"
  - "https://example.com/p#"
  - "mailto:someone@example.com"
  - "mailto:a@b.c?subject=hi there#x"
  - "urn:isbn:0451450523"
  - "/just/a/path?x"
  - "relative/path"
  - "//host.only/x"
  - "///triple/slash"
  - "HTTP://EXAMPLE.com/UP"
  - "http://example.com/%7Efoo/%2e"
  - "http://h/%E2%82%AC/é"
  - "http://h/a;b,c@d:e"
  - "http://h/?a=%zz"
  - "http://h/!$&'()*+,;=:@"
  - "file:///etc/hosts"
  - "http://host:/"
  - "http://ünïcode.com/"
  - "*"
  - ""
  - "http://h/a?b?c"
  - "git+ssh://git@github.com:22/org/repo.git"
"""
c("sprig_urlParse_table", '{{ range .Values.urls }}{{ $u := urlParse . }}{{ printf "%q %s\\n" . (toJson $u) }}{{ end }}', VU)
c("sprig_urlJoin_round_trip", '{{ range .Values.urls }}{{ printf "%q %q\\n" . (urlJoin (urlParse .)) }}{{ end }}', VU)
c("sprig_urlParse_typeOf", '{{ typeOf (urlParse "http://x") }} {{ (urlParse "http://u@x:1").hostname }}')
c("sprig_urlJoin_dict", '{{ urlJoin (dict "scheme" "https" "host" "h:1" "path" "a b/c?d#e" "query" "x=1 2" "fragment" "f#g!( )" "userinfo" "u%3A:p@w") }}|'
  '{{ urlJoin (dict "path" "a:b/c") }}|{{ urlJoin (dict "scheme" "file" "path" "/x") }}|{{ urlJoin (dict "scheme" "https") }}|'
  '{{ urlJoin (dict "scheme" "mailto" "opaque" "a@b" "query" "s=1" "fragment" "z") }}|{{ urlJoin (dict "host" "ü.com" "path" "p") }}|'
  '{{ urlJoin dict }}|{{ urlJoin (dict "userinfo" "a" "host" "h") }}|{{ urlJoin (dict "userinfo" ":" "host" "h") }}|'
  '{{ urlJoin (dict "path" "*") }}|{{ urlJoin (dict "scheme" "s" "extra" 1) }}')
c("sprig_urlJoin_not_string", '{{ urlJoin (dict "scheme" "https" "host" 1) }}')
c("sprig_urlJoin_float", '{{ urlJoin (dict "path" .Values.f) }}')
c("sprig_urlJoin_bad_userinfo", '{{ urlJoin (dict "userinfo" "a^b" "host" "h") }}')
c("sprig_urlParse_bad_host", '{{ urlParse "http://a b.com/" }}')
c("sprig_urlParse_missing_scheme", '{{ urlParse ":foo" }}')
c("sprig_urlParse_missing_bracket", '{{ urlParse "http://[::1" }}')
c("sprig_urlParse_not_ip_literal", '{{ urlParse "http://[foo]/" }}')
c("sprig_urlParse_ipv4_literal", '{{ urlParse "http://[1.2.3.4]/" }}')
c("sprig_urlParse_empty_zone", '{{ urlParse "http://[fe80::1%25]/" }}')
c("sprig_urlParse_ipv6_group_too_long", '{{ urlParse "http://[12345::1]/" }}')
c("sprig_urlParse_ipv6_embedded_ipv4", '{{ urlParse "http://[::ffff:1.2.3.04]/" }}')
c("sprig_urlParse_ipv6_two_ellipses", '{{ urlParse "http://[1::2::3]/" }}')
c("sprig_urlParse_ipv4_bad_char", '{{ urlParse "http://[v1.x]/" }}')
c("sprig_urlParse_bracket_inside_host", '{{ urlParse "http://a[b/" }}')
c("sprig_urlParse_bad_port", '{{ urlParse "http://h:port/" }}')
c("sprig_urlParse_bad_escape", '{{ urlParse "http://h/%zz" }}')
c("sprig_urlParse_bad_fragment_escape", '{{ urlParse "http://h/#%zz" }}')
c("sprig_urlParse_host_escape", '{{ urlParse "http://%41.com/" }}')
c("sprig_urlParse_colon_segment", '{{ urlParse "1http://x" }}')
c("sprig_urlParse_bad_userinfo", '{{ urlParse "http://u^ser@h/" }}')
c("sprig_urlParse_control", '{{ urlParse "http://x/a\\tb" }}')

# ---- sprig crypto: DSA keys, RSA keys outside aws-lc-rs's 2048..=8192 bits, P-224 keys.
VK2 = VK + """rsa512ca: |
  -----BEGIN CERTIFICATE-----
  MIIBdzCCASGgAwIBAgIUDqH6UmAmCk928jC3diPY9/kQaXswDQYJKoZIhvcNAQEL
  BQAwDzENMAsGA1UEAwwEd2VhazAgFw0yNjExMjkxMjI0NDNaGA8yMTI2MTEwNTEy
  MjQ0M1owDzENMAsGA1UEAwwEd2VhazBcMA0GCSqGSIb3DQEBAQUAA0sAMEgCQQC9
  QcJKlESZX9zUPhgZsA/f9Cv7Xh3BfVyANcxutwS9+yv+Tpre+iwZIF+XX9eYak+P
  LlZhOAujx8a9BrxP6xfpAgMBAAGjUzBRMB0GA1UdDgQWBBR/n+iicnOwkBzbTH/b
  eBhRoUuVKDAfBgNVHSMEGDAWgBR/n+iicnOwkBzbTH/beBhRoUuVKDAPBgNVHRMB
  Af8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA0EAt9Tsme/1YhPtjTsPLC+QZqwQTd4G
  K/RvBBh7gOnBuikmUQeKFjTSEH9Jc4khyddQds3JbLt8HutCfSp6TnoR/w==
  -----END CERTIFICATE-----
rsa512: |
  -----BEGIN RSA PRIVATE KEY-----
  MIIBOwIBAAJBAL1BwkqURJlf3NQ+GBmwD9/0K/teHcF9XIA1zG63BL37K/5Omt76
  LBkgX5df15hqT48uVmE4C6PHxr0GvE/rF+kCAwEAAQJAT/0iFAlUcQqON/pCj2DV
  ZM87Y5Nkuim01c9nJwgdbfmmbEy9KUpmwsH2sfGy3tZTNQgbeuN15BM5OpaeotCE
  AQIhAPXTI+GebsvTSn6pPTxrETGrjJOmnp/OFk282nx1IGOBAiEAxRczxHsr/Jpz
  UMVkUesd2vQsKtLvQXRJ3Vq2AKSmSGkCIBKDvIgZrq6bU1kG1h3e0oSzLvtP6VKP
  6w4f0zTcfXwBAiEAuqb4ndFQnQ/gudPW6EXUpnGsCnptn/1znrCzwPQtjlECIQDl
  93AdyyHvBEvRtHhmBFH/5ZI3qmhxa/ipwhJHaFJODg==
  -----END RSA PRIVATE KEY-----
rsa1024: |
  -----BEGIN RSA PRIVATE KEY-----
  MIICXQIBAAKBgQCjPNoCjlhTKtR9m7zEg97H9OJsjrthLhjAEhVwHJxmWlRquxyp
  TIicwmKW/uGEO3N1TQ63lg0/ltkqk/Ho4R5hpAD8q0MVrJHB5SBeUFLa+qm5BlZN
  54PFAvR9uKroGM8NLgq40gPexJdznQgu+Gv4WA2iHCEzbbcJ5GdpLpHEkQIDAQAB
  AoGAIiYCvXIlzBAzr6s6zCmCG3aBP5CEZooMJ3IhBfkWRtsyubk2/7vBAHoxwcDE
  ULNXLfzWzVUYpGrcN2oHu14Myq7HBuUCnQOfQayZf+BXQMggUDOtsWmWb98Hgo1X
  I795sKxxVB4+sbw9MTtebgMoaQxaY/4WcEDh+O5LImd4dCECQQDQR2ZHBu+M+s/w
  SXHHgt8bQb6TVejww6MpVVW3xDKBElG1MfdeCRlD3snF1tNeIOFc3NBwveR4cIjM
  mJqQGsE9AkEAyKOPXreS3h5omqqy1uE3X/btyheQtVMra51oq0/tX+q9E047irUf
  mVB7Ev0MjRC3NuDk7jo4+X29svARh6sd5QJAOw6z0poF3OzVf2Xj7FWQm7L1reNj
  TLm8jyDSUGxCgdTG9GD5qmFcF6GZhw6WGo+qN2GpfP5rRTdros/2q7vaZQJBAIID
  mxAhnQZaZiZzntgnsR56gLSIeLlHX8eohP8eGBAjqMot09+aZxOOV3KCj/OJdXAW
  Y8ML74ect6SQdIuZkxECQQDPye1L/nZOmsmikZLDg8z8YtLx7urYnw/AZSXz210F
  yYCDF9qJ8A+Fn8xAmdb7RHgMzGzPZSzDf0xqvTNSVZc/
  -----END RSA PRIVATE KEY-----
rsa1024p8: |
  -----BEGIN PRIVATE KEY-----
  MIICeAIBADANBgkqhkiG9w0BAQEFAASCAmIwggJeAgEAAoGBAMFI4/RsdJyGsTtl
  Z+ohS4f5SdUUnR2J96Ql1/yY6VwIThR5nq+yFvNIrpCruaZtv1WKYYXJ9zOWLpZg
  ETRt9EvTeyR3JyI0q+gEXXSzIVTm9jv3FuRthcjjTK/UMpBiMZQfA+KFntNoCDC0
  dq3at8m23ENaeRfm9m5f4eP1alvHAgMBAAECgYBkbwG0Ul7NrteNK4YxjJd40jph
  NFLntHcvnlJ6+OHZZp9b2E5ysTFnvQ6oMfNH3aMcScmfAXEoJxOSI90Mx0225/YW
  LqaXAayuTg8xWJOG4fkFPmuUkIdVOLEZPa8toJG0JS5D60guNprnv9nQ3XIr0E/R
  xOPstCXW8BMoEYFckQJBAPv7y058cIlTSPq4mGFOqTUnDaxcVQxSeJ+CfJ/O6lL3
  tO2S4ECGKneOoa/X5p9XnGnslh4PNaOj2puZajSo0eMCQQDEXZQmgs8TYBQngdVr
  me7Qd14bc+NwcleGyHyN453DGBkWB5cxxpKqrJmBurFYuyyLjz3xJqaPBPlErkqJ
  yuPNAkEA39e7sQsmRTdw+xiEdNyVv5vjr5uOCZYxhTE7WBNNYUqetPTmtSr6Cp7v
  zu9x9Va0ofwDFszYD3f9OIA+Mm1NlQJBAMAPVywjnS4yNwQ9NOU9dhtn5R+sxbPh
  4kHuLgUJr/B1zXOCkRsaQbG1h58fXv6OdA88VzVavGX+U2AdqMIFM7ECQQC7djpP
  rataIy8qYPVPXvNRevE/hDMhIC1NFPYliJzhSczxLYmM6RyPaEsv9WssUtMBHpql
  SahNG/lXe9/6ut83
  -----END PRIVATE KEY-----
p224: |
  -----BEGIN EC PRIVATE KEY-----
  MGgCAQEEHFjIy3+dsfKDF0Tra4xGARfz79ugZshalUKmUN6gBwYFK4EEACGhPAM6
  AAQbT/9UNSxWqeBd+aA++5GKNphMyK+dupxVKr9pRAZWgOIkqQLgaZ7G7gWlTKOC
  PY80LqbHswqsHw==
  -----END EC PRIVATE KEY-----
p224p8: |
  -----BEGIN PRIVATE KEY-----
  MHgCAQAwEAYHKoZIzj0CAQYFK4EEACEEYTBfAgEBBBxYyMt/nbHygxdE62uMRgEX
  8+/boGbIWpVCplDeoTwDOgAEG0//VDUsVqngXfmgPvuRijaYTMivnbqcVSq/aUQG
  VoDiJKkC4Gmexu4FpUyjgj2PNC6mx7MKrB8=
  -----END PRIVATE KEY-----
dsa: |
  -----BEGIN DSA PRIVATE KEY-----
  MIIDTQIBAAKCAQEAn1y7/yVvSnonGhbFLDvoy98Z/XxNFPT9Wn+IRAREiNSzMKmW
  x38AMA68Q/BSvx4/aUKxcoI6Zri5bDo+/+cxbeG/PQ6hcZCZGfv7L64bhSZIJSir
  fTKUFnQONgd8zRubQTbHGfyozS4M2uonNDeQpfOOspEHZjLYC6q166f+3yiXGX59
  FnakDlOqVRUMTGXaYpTvy16jYnio5fs+DvNFzacV9b749UtQB7EkuK37izXf+SL1
  SlYut8MRa3NRrbPsOPosfd5AX7RgRfqt6NpqXwVaszCP6authl5MkQlQugNCkycX
  cj6MdCsys4BjYzMsYOUPwm0IM68v6iRv5P+HeQIdAJ2Nwxs9N27U4HDs1cnhPVlG
  inA27dAbi2YndZ8CggEAYZq9/DZakPEtWRWS6p3b1DUT0qKG8v124gXRg6yoN++w
  VRMz2uwYaIzm/0L3LEY5lLK2ZJcMUaMV83JRB62oD03c7+3fPVduebatYaFOQtdC
  KB1WlbHO0jNwB4GQbC3LjDfmVpWYo3Rht6N+VnuSZaDMQfFtfsHK+OABqF9VA4TE
  FvhuBvzIoF3rSDOYMlcPbdQU7byO+rhyBqc4KsQKkY51CvzEN3o94ANz2W1vHxPA
  qBJ71k1HBcx7ZNNllHaX6Nbmf60g+bFmshwROxH8TkLYRJ2B0cbJATlye5nMppu1
  wrcJiPSyw6wPg6HCFu7c+k4oGoXl2c+ZHeLY2KX0KwKCAQAjTvK7ggdct56fqiw6
  v7XyFoVUVd775uUAWUbwhFe8jA8RdsutA8uSEHdM3gca0z8SUDLW9Yb89omM10Ak
  M48MyEW31bJ+o0f/gE5+LFHUzWRSd7StzZrqVU9KAVGSTCuPbZw2CakhcTDITFO1
  3Oy6lrVMKpZZUwd6sZgBCcpTQxCpESkoSBDlJ2k3gNAJdMKqkbI21SIACTga0lzb
  cbWNuThCGcaWlQPj5P/rJPP186gS8+qQgfZzp9RyTXJbdTAhq9mhB2gbChdMIgeO
  0bc+GvaYAa+ebu7d1o43DgoHg9aHF/rN2I4rUmZ++/v2uXu7GdlXk1j0zi56bJQi
  MxhCAhxSOoPOEE8V4DPPacXibN+XgJDp1OZW1YVZUTWM
  -----END DSA PRIVATE KEY-----
"""
c("sprig_genPrivateKey_dsa_shape", '{{ $k := genPrivateKey "dsa" }}{{ $k | trunc 31 }} {{ $k | regexFind "-----END [A-Z ]+-----" }}')
c("sprig_withKey_small_rsa_and_p224_key_pem", '{{ (genCAWithKey "x" 1 .Values.rsa1024).Key }}|{{ (genCAWithKey "x" 1 .Values.rsa1024p8).Key }}|'
  '{{ (genSelfSignedCertWithKey "x" nil nil 1 .Values.p224).Key }}|{{ (genSelfSignedCertWithKey "x" nil nil 1 .Values.p224p8).Key }}', VK2)
c("sprig_withKey_small_rsa_and_p224_certs", '{{ $ca := genCAWithKey "ca" 1 .Values.p224 }}{{ $c := genSignedCertWithKey "s" nil (list "a") 1 $ca .Values.rsa1024 }}'
  '{{ $c.Cert | trunc 27 }} {{ $c.Key | eq .Values.rsa1024 }} '
  '{{ $c2 := genSignedCert "t" nil nil 1 (genCAWithKey "ca2" 1 .Values.rsa1024p8) }}{{ $c2.Cert | trunc 27 }}', VK2)
c("sprig_genSignedCertWithKey_rsa512_subject", '{{ $c := genSignedCertWithKey "s" nil nil 1 (genCA "ca" 1) .Values.rsa512 }}'
  '{{ $c.Key | eq .Values.rsa512 }} {{ $c.Cert | trunc 27 }}', VK2)
c("sprig_genCAWithKey_rsa512", '{{ genCAWithKey "x" 1 .Values.rsa512 }}', VK2)
c("sprig_genSignedCert_rsa512_ca", '{{ $ca := buildCustomCert (.Values.rsa512ca | b64enc) (.Values.rsa512 | b64enc) }}'
  '{{ genSignedCert "y" nil nil 1 $ca }}', VK2)
c("sprig_genCAWithKey_dsa", '{{ genCAWithKey "x" 1 .Values.dsa }}', VK2)
c("sprig_genSignedCertWithKey_dsa_subject", '{{ genSignedCertWithKey "s" nil nil 1 (genCA "ca" 1) .Values.dsa }}', VK2)
c("sprig_genSignedCert_dsa_ca", '{{ $ca := buildCustomCert ((genCA "x" 1).Cert | b64enc) (.Values.dsa | b64enc) }}'
  '{{ genSignedCert "y" nil nil 1 $ca }}', VK2)
c("sprig_genCAWithKey_bad_dsa", '{{ genCAWithKey "x" 1 "-----BEGIN DSA PRIVATE KEY-----\\nMAMCAQA=\\n-----END DSA PRIVATE KEY-----\\n" }}')
VK3 = V + """rsa8704: |
  -----BEGIN RSA PRIVATE KEY-----
  MIITSAIBAAKCBEEAksJMeNmC/Ep/C3ahMatFYs1fb5tzlyx0UIkMVz726jH5S163
  ykMTTQLEaecUgfAFf45Zl72DnuCjNnTpME/mqYycuJGlMfBAEdIWuXoGO8cNbpN8
  xDEpM4w2YOqMSxi+BoTiRNQgNxN0Dcz+M+ujV+cDmVH8N6dcXr2NP+EuYLGjea3d
  qvUJHkyNitQOTAni3jzadc33wNYNxBof9ItKd59uwJVqVSY72SOLyTcEtcuwz/lz
  ceVb5pquYJzNSckCPj+lW3CYscWDGS21RiGzXkcEXIDCGc/LrCoj7Pi9rT13avUM
  UbpvZFOypI17lUq67n+DgqFEfmWDuSU/l7j7Z75JL4F9rr73G3gnN/vpa2BbNFtY
  /ORfBYGk+CjpBE8B7rZ30gYsC+m35mKm54NNrn1o00+8+k2Rle+BXGVNRft8tOu8
  MNxtyaRKOx8aY+IKz2qfU5ZebMgZDLmj6FmLoK84faLIKN2VYayN6Ma9FeYDl/0H
  CbtrKjkkm7PfSxINeP+X7Xwj/ZlIXb5XJKrZ9Qb/sPXeeD8sJqT9SpJoqMMAwDd8
  XwnDkROxuXnBFB4I6CVWTOag8JrC1Ri1sD4dW1LvDQXJj7n1mxynBTtwjURurFC5
  4yB/A9O9EWej7CDxmc9wpoa5bp6ZABoarjVONfmp3MiprQ6H2KV/n/zgwyUA1MQG
  +wJmckCzdwLeMDBYKxs3J1DfDlOwmjuxMUOuAwq21U/ZSjYTckGCK6ZZF4P/BnKB
  bwmY3BUlThTG3b+V3AB11s5kM4MK4eRKhHQ1zNNprsgdXX8QCWKnkrMpcGTtFtKe
  I258ueH+52V1w3HJmK9sXvmXzZy13fRL3nzPV0NWEUN00c6Qv8YC7tzj31d2yc+g
  ZMEoCTaMZxvq0970kIL9axYuSCokMOaDNsLjsRCnEYsONlgVQkLNl3TS8d9BP4d4
  dIOxQmCvUcjszn3CTeruCpKqPAzxpatMbkWOTuGv6I3oo2uDAoW7A9wEc/gcLvUC
  LxWC3qFd66d9Qyytgak5HLIB0DloyGAw8m6lemJ5N5JY/tc/Qrma0XCHtqv+kNT1
  it/T0+ZPZ2TWS6uNZk09+Q8isDRd7PiLKP2r+wDKvPFB0ucHCsA5o6rqzuUkTeSb
  sRghgmjefzvIDv4+JLuH7W0Zle+0Se7ArwEBw1BZzYR5YUXATb1rZvnJi0hDRxVJ
  RIRa06/ZTG9dDwe8qFa6nTgleL0tiGGwLmiLgmA9hhfBgThNSSNDez5wHEsBT70l
  XSMMpi9vg4cENgKOOKfCf9zhWEdbIwPKmu/jVqRL2CFc0b+vPOoE6igiAfW1Kw6c
  NGfUddTNAuxzD03KPPb7YJmTGuW63erWmbsG1HsSshIccBMzpLbSfYEZESCL7teZ
  AusrQIbsR+4uTCaAzDgR4iJiuEbdsXQDEMfx7mV6zFM2BLGwrY5JYP0t2k0CAwEA
  AQKCBEAVpeHdjQmJyTwJRwP1uCkMLyAt7d/J7mLv7ZoA6pxFz9Omnv+nBGg98AkP
  WBNJ1svGKjYkBcP7CnF42xukppHvSPsQggdnS471Mf4WePNKG7gVq114RooofOfD
  5FqHyfa0g83T+k264hHjO+2etK+2YTDCNno+WV/CPTKvOA+nxWby+scbwc5eW6DL
  WDFjB62hO5e7+y2vEm7FvQF2s0SWSvxtcvzUN5y/ZcNnuHJnlfbBuYRNH4Mutnq/
  bJHJma7M24WQQevRg+wtKXViYB6TFbsFIXHAQ0sXXRX0jX0pJ0vMs/3lC7EFEGWQ
  aVWlSs3dLWO1lVqYTHAhk5GDAg8vmT2MFjf3BVtHqtxvdnzS0SFS9/Xd7pqSTN02
  mo5DYPDM3g85pJ3DBMQ9kH1vNrVIO7Pb68NZUVoxeY/66ZnRl2GorFc+W92OpL8r
  DmZNp9kRXyMbvi61MXpPIA5spnzMBIdlh5P/7IOYUfmS2xym33QrQMXU1S0JyukQ
  AKM7nHDupsEp5P8dbYq5ApaHJZ6bSrTVInIhCayBEiL8vjEAUoIeAxvuRu9D9gQ9
  cuzHWLuBRt9T3kyM1pSjwLktmKlVlcZbr5KxB+y8kdLp7ip8OW/GgkKRSB4ERKul
  0W8Nfzne3DRmlAaZVH1cKv2W3Je/VXxiwW9p7slHbKOGnX4oEEwZlnAzKYJOxdAo
  iidCiMxl+2Xnf5c6Mp/Lzb9QStv0L2Kj5gGdg7gnA8/75H+XdxICxStPFEpZ6YHh
  0rNoDm8Vb96nJJuaR8A1qC5agB3zFxApBQAJ8So87FKwrY3P8Tig5LZ3gRyLjx5z
  DtyZMq4aSRIx6eWYqUNFyGcrC3N50moyqN2j1JjTl6quOtFEk4r+hBUvOoksDdbi
  bcAQkUqZbZKwzqZjjTyye7pKsUhVdeVfeiXyaXg4Yllbl68AzYPc2R+S7rIUuBAv
  Kmt7GyAU7ejocMypV2eY73c5JvBEJci+Xgt7GaQ7C2aIn7ZqjrGqSUPgyCxQR90f
  Q7UjdRwqXWo3kfBEQjJtnOdXiT13Aa0V/lHWr47Xdywp6w95X/cDZ/9TYGgOjHoy
  IJHuYrCuhYi8PtoX8Su4oELUfDsQQrz+YEOq4fhzYE5v6iEk97ur8Fqq2j9J+ngw
  sjFjcrjOlG7EDAbNYncVr4SKepjyo/KBeUnYOI/m4vpGBVcjU4kGZ1oZMKzke01w
  mdSv5yg0x4PzdGpMbXVvayj/+iy8R2GX1jHdLNuYD9ZeH+Cw3u7cjXf6KgpqlcZJ
  jUNI0rVK3TSDq/sK5erESsy+MeF1AOAn+QO8qaxWV3Rfap6IcFlR1iPQ2k49QUB0
  wvLoMvWZhf56nYD6szFngyz/I2bWuxGTXyAVW/xmrbLM3koo3qEqCJdRKAJf3PXL
  7MQc9HbmKohtT+3KUwnsY80IsiUuOxmbQgvSrWeKbUkO/2glzwKCAiEAxb9TrpQ3
  9o8OW3APFXjsVftF0wXz82dbvLi6kogXR5yAynA0DFkS8cCCx+vGNJwzn7D2lZ20
  zIMRctoMZ0U/HcrJGw2J1i6n1V056oRMmPWSVdy5xYv08E7ZMZpM3PkdfcaGibvi
  OMOYxdT3IB9akXFfG/lRIJwyx+4uWEiNiUEVfhBEwvkKDNZpSVSYJC4+NQmPdKnw
  OS4Pr7pLQoymv0Pszs0Fqea/hC+RpejWI8gFcI2I6nxRo7gSomBK61sKvMLrmH5m
  YPH3rcp7u4jxfPqKdimTQ973AFtkLV8as+/tjwJyzPpdG6Lz7IYyymWZVhMaByMm
  4SJtmSKEy1agIot05Qik5mK5iOa/ulVKwwbmDLNvo+WtnYyK4+p/HwPKxzNH02dy
  pbPaaCdjczhMMft29S1kD3Pb7DM3uZOWFTUQSKr29i3ZDdxGnjw2CsEO4vMyXJQi
  mhmNGHT6fW15cTJ5ttm44X4s4RFx+Cl4caFJt+LQmNHV61fc7OrywMzo9mfZ4sIy
  i2bQJ3YNnfW9CP50sdWw06AEvJmlmvIKXEdjNw7yztzmtSnP0OxamXXGPNgvK/vN
  uWx1TVmGzR26TKSSLwmPziKtihB4FaHvYlSbjIPMStKfT55pwmHMBJLi0fIpb4mR
  nmDRJOKSNE1x7jh8CvT7+lQkytu6SH9ulTBY8nNPvfn41WGPHFmcRLZqq6cFmwVK
  g2X+vNPWmXcNDwKCAiEAvf3MCMxmQqIUF/PwfzenwvW51sceSfLb0f4NQlkvAzfi
  /bzkHI8mEzwmKBsA3PeLZWTeUUA3K7dFKwellQiB5SjpfTwFgSiu30gt2pFaVjkO
  f0IFG44dmXKqL2NGCfXfXf3RN52mgyeBmR64urhGGNpjLLK7xPBPX08cPXvXgnIg
  o1thtHbqYaMKIN8F6Jz8lf3EVsP6/+hV8WeN3D0J39Rfj5BT7N7cJxqkl+em6fp+
  V2Y9PuC5HTq2fwVSvIukIQ2yjBE1Ze1sE0YCNDgHKJ0qX75ptLhU/gzm8Cgg3WpE
  zB4kbKCAobB0o0XcStOGIlPTVQrtCxXNFJ23FxGpJxnJUcSZ9lT+go0ie+0P4VxD
  EMi0CdONrhc5bp8QUNkNGkeL/5+VWwQtRjJm+Kgj+GeYjsQ9pEL1rVnCxPL2YpCm
  9Z58IEKU23nQjSiEFtpwy/G+7KXvttztDEwsymVmY/2DHAiZEpkTZNgNwL72YMnE
  1lHdtfhszvguwvabvQRF5ZgrFcC1cZwy5wVV+zeLTUyf1PY4SBUbOPxct9c9Ah2R
  xYLghjOuSh+lxTQRneNub/T4/nYAfvjLdRHZF41j42ahWlUEPTXO4/TmF5O7hOTB
  dvdcxI1FbEbQaaPUoshB2UegUl3/0Q9l9OBqvCB36sJVvha4ZIujxz+ymI08szE2
  Rz27xxJauvNxitW25Y+nU7yqigx9io9zYGJNnZpa4wKCAiEArgQYV+EG/moVcFHE
  dFjdYSyl3XW3n9Ks3/6P8LLiCZqnm33xz4vzJ9sJO3U4DsQGidjopfEKUY5lpHRN
  xfMh/82b+7qGOX0FJLXNaZrS7SfthrGeqUDoYzB/4S6vxSVT1oMFkd9MzDcUEcO/
  VP1CbgsebzePNOs/pMDs97OhGc+0YiNe31TYi0ODk4xl9jDbfUDUhQ2m4CqwkyuV
  XxL3Cgl0Mugou8Lbdi+GNEIZb5NtdgaXHgIYtcIeY9XpGAQeBs5hFOjmnxlPpBgz
  mmyAVkMD5cfgWDG1mxLRrTur+/x/SQIWlFsd5FwZ22Kc/484yI42sWE1rZjmaYP+
  6BFrCfs++u4IbtUiAF9PCWJVUBqaB0NAUzKi/anX74lEJL7pizKNWnQGZ9tFr7I5
  ygMYykNIA6nWC+Mg/VJ1D1HZGQCBO/F3MlxWTeQyIL1LsVsDBqSNBPs3F/S0PXlz
  lTzpSbvpcAdYstaeF9GKQZ/85cHRZYirmE/PuDKxr6txxEiOGYh6LRpH8HShaJhy
  kzbVCz0g4/3whcqjYHS1Tw0AIQSRQrpc4b1zKKmKv4e+kp0ZviFgIYyNFUdkUpUe
  ExK+BwQrwEjhy7yoin7DrgW66wUZfSXeeVmv6Bi3aN828i9weuBnpkehZYY9hf/8
  ORqNz9zVC69aroetePazj2jUn2TUYUcoPT3kw6H+liwlYDJG3Jc2T5zwXYE8El84
  0gP58QKCAiA0Tnps9bE1qR+1FIDi1XTHdRVr7zgEjes9Hh+SY7FQxoMk7msy/aoy
  431xzzVmoHRtPt8CKZbG31cYqKtKo6P3blMSGoM9cvDqIhoVsazYTi8SlB+J3Y+C
  npICJ+exeFK9stJ16F5ef3LrsAyVw4Pw9bcWKEMPzkVb7RDOUJkdncQklVUJ9S9E
  IDn6oMwkpYvY05vJc31YFSQMKUFiIB/m0rZYdRjV/ulHjss/0xQeGMvNziUQeZgd
  VvvFbra/mAZg3z+H1nkIDdySVdTngYFfCh4PbAH4MkOcCftOpQ2fR9GXDLlkeq/P
  VCBYjzQ+GYw1STTGlhJ62c6zXVR58m/KhwvpCiKFMhM76BVVXwffOKJyLX97sRWx
  l01Fil9YktlLoeUGRG4/N6ArUlcNIGV+zy6uJ5L89T5kMnEv/eAddMuylaaAzzPi
  VOA47K2pCQzC6VRyHKEpjBtrJlGyi0YsQzBkeG2ENEalneHzbd+w9/vMMY/DuJhk
  RunA3Vo1KMcBlepOu9Z4Z9OPzOVGG52rc2wRmpQWLFFpV/lC1+xA99kZMpYT/IiA
  ecQOze4HtQTDqAMhM2Whj2ecXISTOmcExU2o6/0VyQmjstniJdcbmEs3MJUGvAof
  7EMWwncZNd8DLfgSlTSH3yBn0Z0xHBNHu6cVhXXQoK0/fubxnvjWMLdL19Ap14DJ
  NZrN6VbITst3f1rIVPX/Ps05/PZ3bHaXAoICIFWigHo/2SDu4BkHUi4lUt6sM+Tt
  0WxybMrE//fc/9TEENcdCjTqvjO8SGaIwk1adLle6S0r4mahm8o/RcUQBWumtulH
  ckmnEwecY3KAsVaqHvdPOj/ziTVQLlN/o6KO4VJ/bGRXhT4lMfrvrRK4HMBnPIIO
  G89OsTHcBazYC9YESppSB3iAvf30y9O/jd0m8Ym6JgLeiCmDJf/rWOuuth0L+Rdw
  rIz4cH9u//mG3vtzPeJ2lZ29V2sNkzB3wzADrTdkaevguELNR2kQKpBCjCEhGTDP
  ne/4wONrfLkqImjTnWuf3KEHod99toHFo98LiNe3ZejV4iw9BV031UUi3LF7xI7C
  yqJnb2w+crOf0Ek3nnxH6LbVDUlOWpNSAtjYPre3orgGFspoyFdXoIeBM5RK2V17
  6VcWfXsuNMivIV+xtPSMml91XukYd+tqW/FH33lVfNv8ORHxIJNcLb7RK+1l8FH/
  +6gapu4fSmGLCCHAYNUpTSaCA515ynk3PlDQ+yR1jrF5Vkvkfd3y9yjGrbE4qEtl
  LcXh1hGsY4BqAnHxP/h9KAB9QPjLeX6+CSgRw/icu2r/u9ZMAxM1L5tcoc+z0LAn
  59ZVFgUwRgBpA3v711F6svon/+2WJpeCncCoXl7bjppbQpdgiHhBzB1/Ph7SuWIj
  4Y0SUU+zM2VeYqfhsIjDSTU/B4ofs6mBq3/to82JLTek37iJ2JPdrOfsrbM=
  -----END RSA PRIVATE KEY-----
"""
# aws-lc-rs signs with RSA keys of 8192 bits at most; Go (and so the rsa crate here) with larger ones.
c("sprig_withKey_rsa_8704", '{{ $c := genCAWithKey "big" 1 .Values.rsa8704 }}{{ $c.Key | eq .Values.rsa8704 }} {{ $c.Cert | trunc 27 }}', VK3)
