package jobs

// VolumeInUse says whether a job of this runner holds volume (reserved for
// or mounted by its storage session): its keys may not be shredded now.
func (r *Runner) VolumeInUse(volume string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.volumes[volume]
}
