package label

import "hash/crc32"

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }
