/*
 * judge: drives the vtl's iSCSI target through libiscsi (the library
 * QEMU's iSCSI block driver uses), one raw CDB per stdin line, and prints
 * one result line per command. Built by the Go tests.
 *
 *   judge URL INITIATOR-IQN [crc32c] [r2t]
 *
 * Input lines:  CDB-HEX DIR LEN DATA   (DIR n|r|w; DATA - | pSEED | HEX)
 *               reset                  (LOGICAL UNIT RESET)
 *               lun N                  (send the next commands to LUN N)
 * Output lines: status=S sense=K/ASCQ resid=R n=N data=HEX|fnv:X
 *               tmf=RESULT | error: MESSAGE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

static int unhex(const char *s, unsigned char *out, int max) {
	int n = 0;
	while (s[0] && s[1] && n < max) {
		unsigned int v;
		if (sscanf(s, "%2x", &v) != 1)
			return -1;
		out[n++] = v;
		s += 2;
	}
	return n;
}

static unsigned char pat(size_t i, int seed) {
	return (unsigned char)((i * 31 + seed * 7) ^ (i >> 10));
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: judge URL INITIATOR [crc32c] [r2t]\n");
		return 2;
	}
	struct iscsi_context *iscsi = iscsi_create_context(argv[2]);
	struct iscsi_url *url = iscsi_parse_full_url(iscsi, argv[1]);
	if (url == NULL) {
		printf("error: %s\n", iscsi_get_error(iscsi));
		return 3;
	}
	iscsi_set_targetname(iscsi, url->target);
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "crc32c"))
			iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_CRC32C);
		if (!strcmp(argv[i], "r2t")) {
			iscsi_set_initial_r2t(iscsi, ISCSI_INITIAL_R2T_YES);
			iscsi_set_immediate_data(iscsi, ISCSI_IMMEDIATE_DATA_NO);
		}
	}
	if (url->user[0])
		iscsi_set_initiator_username_pwd(iscsi, url->user, url->passwd);
	if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0) {
		printf("error: %s\n", iscsi_get_error(iscsi));
		fflush(stdout);
		return 3;
	}
	printf("connected\n");
	fflush(stdout);
	int lun = url->lun;
	char line[1 << 16];
	static unsigned char buf[16 << 20];
	while (fgets(line, sizeof line, stdin)) {
		char cdbhex[80], dir[4], data[sizeof line];
		int len = 0;
		if (!strncmp(line, "reset", 5)) {
			int r = iscsi_task_mgmt_lun_reset_sync(iscsi, lun);
			printf("tmf=%d\n", r);
			fflush(stdout);
			continue;
		}
		if (!strncmp(line, "lun ", 4)) {
			lun = atoi(line + 4);
			printf("lun=%d\n", lun);
			fflush(stdout);
			continue;
		}
		if (sscanf(line, "%79s %3s %d %s", cdbhex, dir, &len, data) != 4 || len < 0 || len > (int)sizeof buf) {
			printf("error: bad line\n");
			fflush(stdout);
			continue;
		}
		unsigned char cdb[16];
		int cl = unhex(cdbhex, cdb, 16);
		int xd = dir[0] == 'r' ? SCSI_XFER_READ : dir[0] == 'w' ? SCSI_XFER_WRITE : SCSI_XFER_NONE;
		struct scsi_task *task = scsi_create_task(cl, cdb, xd, len);
		struct iscsi_data d = {0, NULL};
		if (xd == SCSI_XFER_WRITE) {
			if (data[0] == 'p') {
				int seed = atoi(data + 1);
				for (int i = 0; i < len; i++)
					buf[i] = pat(i, seed);
			} else {
				unhex(data, buf, len);
			}
			d.size = len;
			d.data = buf;
		}
		struct scsi_task *r = iscsi_scsi_command_sync(iscsi, lun, task, xd == SCSI_XFER_WRITE ? &d : NULL);
		if (r == NULL) {
			printf("error: %s\n", iscsi_get_error(iscsi));
			fflush(stdout);
			scsi_free_scsi_task(task);
			continue;
		}
		printf("status=%d sense=%x/%04x resid=%d n=%d data=", task->status, task->sense.key, task->sense.ascq,
		       task->residual_status == SCSI_RESIDUAL_UNDERFLOW ? (int)task->residual :
		       task->residual_status == SCSI_RESIDUAL_OVERFLOW ? -(int)task->residual : 0,
		       task->datain.size);
		if (task->datain.size <= 256) {
			for (int i = 0; i < task->datain.size; i++)
				printf("%02x", task->datain.data[i]);
		} else {
			uint32_t h = 2166136261u;
			for (int i = 0; i < task->datain.size; i++)
				h = (h ^ task->datain.data[i]) * 16777619u;
			printf("fnv:%08x", h);
		}
		printf("\n");
		fflush(stdout);
		scsi_free_scsi_task(task);
	}
	iscsi_logout_sync(iscsi);
	iscsi_destroy_context(iscsi);
	return 0;
}
