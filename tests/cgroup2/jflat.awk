# Flatten JSON read from stdin into one "path value" line per scalar, for the guest's busybox
# (which has no JSON tool): {"a":{"b":[1,"x"]}} gives "a.b.0 1" and "a.b.1 x". Strings are
# printed without their quotes (escapes kept as written); empty objects/arrays print {} / [].
# Usage: awk -f jflat.awk <file.json
function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1)) > 0) pos++ }
function str(   c, out) {
	pos++
	out = ""
	while (pos <= n) {
		c = substr(s, pos, 1)
		if (c == "\\") { out = out substr(s, pos, 2); pos += 2; continue }
		pos++
		if (c == "\"") return out
		out = out c
	}
	return out
}
function sub_path(path, k) { return path == "" ? k : path "." k }
function val(path,   c, k, i, v) {
	ws()
	c = substr(s, pos, 1)
	if (c == "{") {
		pos++; ws()
		if (substr(s, pos, 1) == "}") { pos++; print path, "{}"; return }
		while (pos <= n) {
			ws(); k = str(); ws(); pos++  # the colon
			val(sub_path(path, k))
			ws(); c = substr(s, pos, 1); pos++
			if (c != ",") return
		}
		return
	}
	if (c == "[") {
		pos++; ws()
		if (substr(s, pos, 1) == "]") { pos++; print path, "[]"; return }
		i = 0
		while (pos <= n) {
			val(sub_path(path, i)); i++
			ws(); c = substr(s, pos, 1); pos++
			if (c != ",") return
		}
		return
	}
	if (c == "\"") { print path, str(); return }
	v = ""
	while (pos <= n && index(",}] \t\r\n", substr(s, pos, 1)) == 0) { v = v substr(s, pos, 1); pos++ }
	print path, v
}
{ s = s $0 "\n" }
END { n = length(s); pos = 1; if (n > 0) val("") }
