# Reads the YAML subset that Sloop writes into cloud-init NoCloud seeds and flattens it into one
# file per scalar, for busybox sh to read without any quoting trouble:
#
#   awk -v out=DIR -v pfx=u. -f yaml.awk user-data
#
# writes DIR/u.hostname, DIR/u.users.0.name, DIR/u.users.0.ssh_authorized_keys.1, ... holding the
# scalar's value exactly (no trailing newline added; block scalars keep theirs), and DIR/PATH.#
# holding the length of every sequence (so "ssh_genkeytypes: []" gives u.ssh_genkeytypes.# = 0).
#
# Supported: block mappings and sequences by indentation (also "- key: value" items and sequences at
# their parent key's indentation), plain, "double-quoted" (JSON-style escapes \" \\ \/ \b \f \n \r
# \t \uXXXX) and 'single-quoted' scalars, literal (|) and folded (>) block scalars with chomping
# indicators, comments, empty flow collections ([] and {}). Anything else (anchors, aliases, tags,
# non-empty flow collections, multi-line plain or quoted scalars, tabs in indentation) is an error:
# the script prints "yaml: line N: ..." on stderr and exits 2, so the caller can treat the whole
# document as unparsable instead of acting on half of it.

function fail(msg) {
	printf "yaml: line %d: %s\n", NR, msg > "/dev/stderr"
	failed = 1
	exit 2
}

function emit(path, val,   f) {
	f = out "/" pfx path
	printf "%s", val > f
	close(f)
}

function hexval(h,   i, c, v, d) {
	v = 0
	for (i = 1; i <= length(h); i++) {
		c = tolower(substr(h, i, 1))
		d = index("0123456789abcdef", c)
		if (d == 0) fail("bad \\u escape")
		v = v * 16 + d - 1
	}
	return v
}

function utf8(cp) {
	if (cp < 128) return sprintf("%c", cp)
	if (cp < 2048) return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
	return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
}

# Value of a scalar written after "key: " or "- " (leading blanks already removed).
function scalar(s,   r, i, n, c, cp, rest) {
	n = length(s)
	if (substr(s, 1, 1) == "\"") {
		r = ""
		for (i = 2; i <= n; i++) {
			c = substr(s, i, 1)
			if (c == "\\") {
				i++
				c = substr(s, i, 1)
				if (c == "n") r = r "\n"
				else if (c == "t") r = r "\t"
				else if (c == "r") r = r "\r"
				else if (c == "b") r = r "\b"
				else if (c == "f") r = r "\f"
				else if (c == "\"" || c == "\\" || c == "/" || c == " ") r = r c
				else if (c == "u") {
					cp = hexval(substr(s, i + 1, 4))
					if (cp == 0) fail("NUL characters are not supported")
					if (cp >= 55296 && cp < 57344) fail("surrogate pairs are not supported")
					r = r utf8(cp)
					i += 4
				} else fail("unsupported escape \\" c)
			} else if (c == "\"") {
				rest = substr(s, i + 1)
				if (rest !~ /^[ \t]*(#.*)?$/) fail("text after a closing quote")
				return r
			} else r = r c
		}
		fail("unterminated double-quoted string (multi-line strings are not supported)")
	}
	if (substr(s, 1, 1) == "'") {
		r = ""
		for (i = 2; i <= n; i++) {
			c = substr(s, i, 1)
			if (c == "'") {
				if (substr(s, i + 1, 1) == "'") { r = r "'"; i++; continue }
				rest = substr(s, i + 1)
				if (rest !~ /^[ \t]*(#.*)?$/) fail("text after a closing quote")
				return r
			}
			r = r c
		}
		fail("unterminated single-quoted string (multi-line strings are not supported)")
	}
	if (s ~ /^[&*!%@`]/) fail("anchors, aliases, tags and directives are not supported")
	if (s ~ /^\[[ \t]*\][ \t]*(#.*)?$/ || s ~ /^\{[ \t]*\}[ \t]*(#.*)?$/) return ""
	if (s ~ /^[\[{]/) fail("flow collections are not supported")
	sub(/[ \t]+#.*$/, "", s)
	sub(/[ \t]+$/, "", s)
	return s
}

function push(ind, path, isitem) {
	depth++
	sind[depth] = ind
	spath[depth] = path
	sitem[depth] = isitem
}

function child(key) {
	return depth > 0 ? spath[depth] "." key : key
}

# A "key: value" (or "key:") at indentation ind.
function keyline(ind, c,   key, rest) {
	while (depth > 0 && sind[depth] >= ind) depth--
	if (match(c, /^"[^"\\]*":([ \t]|$)/)) {
		key = substr(c, 2, RLENGTH - 3)
		sub(/[ \t]$/, "", key)
		sub(/"$/, "", key)
		rest = substr(c, RLENGTH + 1)
	} else if (match(c, /^[^][ \t"'#:{},&*!|>%@`-][^:]*:([ \t]|$)/) || match(c, /^-[^ \t:][^:]*:([ \t]|$)/)) {
		key = substr(c, 1, RLENGTH)
		sub(/[ \t]$/, "", key)
		sub(/:$/, "", key)
		rest = substr(c, RLENGTH + 1)
	} else fail("expected \"key: value\"")
	sub(/[ \t]+$/, "", key)
	gsub(/[^A-Za-z0-9_-]/, "_", key)
	sub(/^[ \t]+/, "", rest)
	value(child(key), rest, ind)
}

# The value after "key:" or "- " of a node at indentation ind.
function value(path, rest, ind,   m) {
	if (rest == "" || rest ~ /^#/) {
		push(ind, path, 0)
		return
	}
	if (rest ~ /^[|>][-+0-9]*[ \t]*(#.*)?$/) {
		blk = 1
		blkpath = path
		blkparent = ind
		blkind = -1
		blkfold = substr(rest, 1, 1) == ">"
		blkchomp = rest ~ /^.[0-9]*-/ ? "strip" : (rest ~ /^.[0-9]*\+/ ? "keep" : "clip")
		if (match(rest, /[1-9]/)) blkind = ind + substr(rest, RSTART, 1)
		nbl = 0
		return
	}
	if (rest ~ /^\[[ \t]*\][ \t]*(#.*)?$/) {
		if (!(path in len)) len[path] = 0
		return
	}
	if (rest ~ /^\{[ \t]*\}[ \t]*(#.*)?$/) return
	emit(path, scalar(rest))
}

function endblock(   i, s, last, trail) {
	blk = 0
	last = nbl
	while (last > 0 && bl[last] == "") last--
	trail = nbl - last
	s = ""
	for (i = 1; i <= last; i++) {
		if (i == 1) s = bl[i]
		else if (blkfold && bl[i] != "" && bl[i - 1] != "" && bl[i] !~ /^[ \t]/ && bl[i - 1] !~ /^[ \t]/) s = s " " bl[i]
		else if (blkfold && bl[i - 1] == "") s = s bl[i]
		else s = s "\n" bl[i]
	}
	if (last > 0 && blkchomp != "strip") s = s "\n"
	if (blkchomp == "keep") for (i = 0; i < trail; i++) s = s "\n"
	emit(blkpath, s)
}

BEGIN {
	if (out == "") { print "yaml: usage: awk -v out=DIR [-v pfx=PREFIX] -f yaml.awk FILE" > "/dev/stderr"; failed = 1; exit 2 }
	depth = 0
	blk = 0
}

{
	line = $0
	sub(/\r$/, "", line)

	if (blk) {
		if (line ~ /^[ \t]*$/) {
			bl[++nbl] = ""
			next
		}
		match(line, /^ */)
		if (blkind < 0 && RLENGTH > blkparent) blkind = RLENGTH
		if (blkind >= 0 && RLENGTH >= blkind) {
			bl[++nbl] = substr(line, blkind + 1)
			next
		}
		endblock()
	}

	if (line ~ /^[ \t]*(#.*)?$/) next
	if (line ~ /^(---|\.\.\.)([ \t]|$)/) {
		if (line !~ /^(---|\.\.\.)[ \t]*(#.*)?$/) fail("content after a document marker is not supported")
		next
	}
	match(line, /^ */)
	ind = RLENGTH
	c = substr(line, ind + 1)
	if (c ~ /^\t/) fail("tabs are not allowed in indentation")

	if (c ~ /^-([ \t]|$)/) {
		# A sequence item belongs to the innermost open key with a smaller indentation (or the same
		# one: "key:\n- item"); earlier items at this indentation are closed.
		while (depth > 0 && (sind[depth] > ind || (sind[depth] == ind && sitem[depth]))) depth--
		if (depth == 0) fail("sequence item outside a sequence")
		parent = spath[depth]
		n = (parent in len) ? len[parent] : 0
		len[parent] = n + 1
		item = parent "." n
		rest = substr(c, 2)
		match(rest, /^[ \t]*/)
		rind = ind + 1 + RLENGTH
		rest = substr(rest, RLENGTH + 1)
		if (rest == "" || rest ~ /^#/) {
			push(ind, item, 1)
		} else if (rest ~ /^"[^"\\]*":([ \t]|$)/ || rest ~ /^[^][ \t"'#:{},&*!|>%@`-][^:]*:([ \t]|$)/) {
			push(ind, item, 1)
			keyline(rind, rest)
		} else if (rest ~ /^-([ \t]|$)/) {
			fail("nested sequences on one line are not supported")
		} else {
			value(item, rest, ind)
		}
		next
	}
	keyline(ind, c)
}

END {
	if (failed) exit 2
	if (blk) endblock()
	for (p in len) emit(p ".#", len[p])
}
