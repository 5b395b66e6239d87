package console

// distance is the optimal-string-alignment (restricted Damerau-Levenshtein)
// distance between a and b, counting bytes: insertions, deletions,
// substitutions and transpositions of adjacent bytes each cost 1.
func distance(a, b string) int {
	// Three rows: two back (for transpositions), previous, current.
	pp := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, pp[j-2]+1)
			}
			cur[j] = d
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}

// maxSuggestLen is the longest word we look for a suggestion for.
const maxSuggestLen = 32

// suggest returns the candidate closest to word (compared in lower case),
// if it is close enough to be a plausible typo: at most 1 edit for words of
// up to 4 bytes, 2 for longer ones, and never more than half the word. Ties
// go to the earlier candidate. It returns "" when nothing is close, or when
// word is itself a candidate.
func suggest(word string, candidates []string) string {
	w := lower(word)
	if w == "" || len(w) > maxSuggestLen {
		return ""
	}
	limit := 1
	if len(w) > 4 {
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if c == w {
			return "" // not a typo
		}
		d := distance(w, c)
		if d < bestD && 2*d <= len(w) {
			best, bestD = c, d
		}
	}
	return best
}
