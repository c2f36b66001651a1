/*
 * regs_xsave: the register state of every thread survives a checkpoint.
 *
 * Two threads each run regs_spin(), a hand-written assembly loop that loads known values into
 * the general purpose registers (rbx, rcx, rdx, rbp, rsi, r8-r15), the vector registers (xmm0-15
 * as ymm when the CPU has AVX, zmm0-31 and opmasks k2-k7 when it has AVX-512F), the x87 stack,
 * the x87 control word, MXCSR and the direction flag, then spins comparing them against memory
 * without making a single system call until the SIGTERM handler sets case_term. A dump stops
 * the threads anywhere in that loop, so a restore that loses or mixes up any of these
 * registers (or a thread's xsave area) makes the loop see it. After the loop, the TLS variable,
 * the FS base (glibc's thread pointer) and a GS base set with arch_prctl are checked too.
 */
#include "case.h"

#include <cpuid.h>
#include <pthread.h>
#include <stddef.h>
#include <asm/prctl.h>

/* What regs_spin() loads and checks; the asm below uses the offsets asserted after it. */
struct regs_ctx {
	volatile sig_atomic_t *stop;	/* 0: non-zero ends the loop */
	uint32_t level;			/* 8: 0 SSE4.1 xmm, 1 AVX ymm, 2 AVX-512F zmm, 255 none */
	uint32_t sabotage;		/* 12: SAB_* bits, applied before the final check */
	uint32_t result;		/* 16: 0, or the code of the first register that differs */
	uint32_t pad0;
	uint32_t mxcsr_set;		/* 24 */
	uint32_t mxcsr_out;		/* 28 */
	uint16_t fcw_set;		/* 32: x87 control word */
	uint16_t fcw_out;		/* 34 */
	uint32_t pad1;
	double st_in[2];		/* 40: st(0), st(1) */
	double st_out[2];		/* 56 */
	uint64_t pad2;
	uint64_t gpr[13];		/* 80: rbx rcx rdx rbp rsi r8 r9 r10 r11 r12 r13 r14 r15 */
	uint64_t kmask[8];		/* 184: k2..k7 used (16 bits each) */
	uint64_t pad3[1];
	uint8_t vec[32][64] __attribute__((aligned(64)));	/* 256: expected zmm/ymm/xmm i */
	uint8_t vecn[32][64] __attribute__((aligned(64)));	/* 2304: its complement */
} __attribute__((aligned(64)));

_Static_assert(offsetof(struct regs_ctx, level) == 8, "asm offset");
_Static_assert(offsetof(struct regs_ctx, sabotage) == 12, "asm offset");
_Static_assert(offsetof(struct regs_ctx, result) == 16, "asm offset");
_Static_assert(offsetof(struct regs_ctx, mxcsr_set) == 24, "asm offset");
_Static_assert(offsetof(struct regs_ctx, fcw_set) == 32, "asm offset");
_Static_assert(offsetof(struct regs_ctx, st_in) == 40, "asm offset");
_Static_assert(offsetof(struct regs_ctx, st_out) == 56, "asm offset");
_Static_assert(offsetof(struct regs_ctx, gpr) == 80, "asm offset");
_Static_assert(offsetof(struct regs_ctx, kmask) == 184, "asm offset");
_Static_assert(offsetof(struct regs_ctx, vec) == 256, "asm offset");
_Static_assert(offsetof(struct regs_ctx, vecn) == 2304, "asm offset");

/* Damage done in the final check's place, for the self-test. */
enum {
	SAB_GPR = 1 << 0,	/* r13 ^= 1 */
	SAB_XMM = 1 << 1,	/* xmm5 low 128 bits replaced */
	SAB_YMM = 1 << 2,	/* ymm9 upper half replaced */
	SAB_ZMM = 1 << 3,	/* zmm12 bits 128-511 replaced */
	SAB_ZMM_HI = 1 << 4,	/* zmm20 inverted */
	SAB_K = 1 << 5,		/* k3 inverted */
	SAB_DF = 1 << 6,	/* direction flag cleared */
	SAB_MXCSR = 1 << 7,	/* MXCSR back to its default */
	SAB_FCW = 1 << 8,	/* x87 control word back to its default */
	SAB_ST = 1 << 9,	/* st(0) negated */
};

/* Result codes of regs_spin(). */
#define R_GPR	1	/* 1 + index in gpr[] */
#define R_VEC	100	/* 100 + register number */
#define R_K	200	/* 200 + opmask number */
#define R_DF	300

uint32_t regs_spin(struct regs_ctx *ctx);

__asm__(
	".intel_syntax noprefix\n"
	".set STOP, 0\n .set LEVEL, 8\n .set SAB, 12\n .set RESULT, 16\n"
	".set MXSET, 24\n .set MXOUT, 28\n .set FCWSET, 32\n .set FCWOUT, 34\n"
	".set STIN, 40\n .set STOUT, 56\n .set GPR, 80\n .set KM, 184\n"
	".set VEC, 256\n .set VECN, 2304\n"
	".text\n"
	".globl regs_spin\n"
	".type regs_spin, @function\n"
	"regs_spin:\n"
	"	push rbx\n push rbp\n push r12\n push r13\n push r14\n push r15\n"
	/* vector registers */
	"	mov eax, [rdi + LEVEL]\n"
	"	cmp eax, 255\n je 3f\n"
	"	cmp eax, 2\n jae 2f\n"
	"	cmp eax, 1\n jae 1f\n"
	"	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	movdqa xmm\\i, [rdi + VEC + \\i * 64]\n"
	"	.endr\n"
	"	jmp 3f\n"
	"1:\n"
	"	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqu ymm\\i, [rdi + VEC + \\i * 64]\n"
	"	.endr\n"
	"	jmp 3f\n"
	"2:\n"
	"	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 zmm\\i, [rdi + VEC + \\i * 64]\n"
	"	.endr\n"
	"	.irp k, 2,3,4,5,6,7\n"
	"	kmovw k\\k, word ptr [rdi + KM + \\k * 8]\n"
	"	.endr\n"
	"3:\n"
	/* x87 and SSE control, x87 stack, direction flag */
	"	ldmxcsr [rdi + MXSET]\n"
	"	fninit\n"
	"	fldcw [rdi + FCWSET]\n"
	"	fld qword ptr [rdi + STIN + 8]\n"
	"	fld qword ptr [rdi + STIN]\n"
	"	std\n"
	/* general purpose registers last: the code above uses rax only */
	"	mov rbx, [rdi + GPR + 0]\n"
	"	mov rcx, [rdi + GPR + 8]\n"
	"	mov rdx, [rdi + GPR + 16]\n"
	"	mov rbp, [rdi + GPR + 24]\n"
	"	mov rsi, [rdi + GPR + 32]\n"
	"	mov r8, [rdi + GPR + 40]\n"
	"	mov r9, [rdi + GPR + 48]\n"
	"	mov r10, [rdi + GPR + 56]\n"
	"	mov r11, [rdi + GPR + 64]\n"
	"	mov r12, [rdi + GPR + 72]\n"
	"	mov r13, [rdi + GPR + 80]\n"
	"	mov r14, [rdi + GPR + 88]\n"
	"	mov r15, [rdi + GPR + 96]\n"
	"4:\n"
	"	call regs_check\n"
	"	test eax, eax\n"
	"	jnz 9f\n"
	"	pause\n"
	"	mov rax, [rdi + STOP]\n"
	"	cmp dword ptr [rax], 0\n"
	"	je 4b\n"
	/* told to stop: damage what the self-test asks for, then check once more */
	"	mov eax, [rdi + SAB]\n"
	"	test eax, 1\n jz 5f\n xor r13, 1\n"
	"5:	test eax, 2\n jz 5f\n movdqa xmm5, [rdi + VECN + 5 * 64]\n"
	"5:	test eax, 4\n jz 5f\n vperm2f128 ymm9, ymm9, ymm9, 0\n"
	"5:	test eax, 8\n jz 5f\n vshufi64x2 zmm12, zmm12, zmm12, 0\n"
	"5:	test eax, 16\n jz 5f\n vpternlogq zmm20, zmm20, zmm20, 0x55\n"
	"5:	test eax, 32\n jz 5f\n knotw k3, k3\n"
	"5:	test eax, 64\n jz 5f\n cld\n"
	"5:	test eax, 128\n jz 5f\n push 0x1f80\n ldmxcsr [rsp]\n add rsp, 8\n"
	"5:	test eax, 256\n jz 5f\n push 0x037f\n fldcw [rsp]\n add rsp, 8\n"
	"5:	test eax, 512\n jz 5f\n fchs\n"
	"5:\n"
	"	call regs_check\n"
	"9:\n"
	"	mov [rdi + RESULT], eax\n"
	"	fnstcw [rdi + FCWOUT]\n"
	"	stmxcsr [rdi + MXOUT]\n"
	"	fstp qword ptr [rdi + STOUT]\n"
	"	fstp qword ptr [rdi + STOUT + 8]\n"
	"	cld\n"
	"	fninit\n"
	"	push 0x1f80\n ldmxcsr [rsp]\n add rsp, 8\n"
	"	cmp dword ptr [rdi + LEVEL], 1\n"
	"	jb 6f\n"
	"	cmp dword ptr [rdi + LEVEL], 255\n"
	"	je 6f\n"
	"	vzeroupper\n"
	"6:\n"
	"	mov eax, [rdi + RESULT]\n"
	"	pop r15\n pop r14\n pop r13\n pop r12\n pop rbp\n pop rbx\n"
	"	ret\n"
	".size regs_spin, . - regs_spin\n"
	/*
	 * regs_check: eax = 0 when every register equals ctx (rdi), else the code of the first
	 * that differs. Uses only rax, flags and, for AVX-512, k1. Vectors are compared without a
	 * scratch register: (v & ~want) == 0 and (~v & want) == 0 is v == want, which is what
	 * (v)ptest against want (CF) and against ~want (ZF) tell.
	 */
	".type regs_check, @function\n"
	"regs_check:\n"
	"	mov eax, 1\n cmp rbx, [rdi + GPR + 0]\n jne 8f\n"
	"	mov eax, 2\n cmp rcx, [rdi + GPR + 8]\n jne 8f\n"
	"	mov eax, 3\n cmp rdx, [rdi + GPR + 16]\n jne 8f\n"
	"	mov eax, 4\n cmp rbp, [rdi + GPR + 24]\n jne 8f\n"
	"	mov eax, 5\n cmp rsi, [rdi + GPR + 32]\n jne 8f\n"
	"	mov eax, 6\n cmp r8, [rdi + GPR + 40]\n jne 8f\n"
	"	mov eax, 7\n cmp r9, [rdi + GPR + 48]\n jne 8f\n"
	"	mov eax, 8\n cmp r10, [rdi + GPR + 56]\n jne 8f\n"
	"	mov eax, 9\n cmp r11, [rdi + GPR + 64]\n jne 8f\n"
	"	mov eax, 10\n cmp r12, [rdi + GPR + 72]\n jne 8f\n"
	"	mov eax, 11\n cmp r13, [rdi + GPR + 80]\n jne 8f\n"
	"	mov eax, 12\n cmp r14, [rdi + GPR + 88]\n jne 8f\n"
	"	mov eax, 13\n cmp r15, [rdi + GPR + 96]\n jne 8f\n"
	"	pushfq\n pop rax\n test eax, 0x400\n mov eax, 300\n jz 8f\n"
	"	mov eax, [rdi + LEVEL]\n"
	"	cmp eax, 255\n je 7f\n"
	"	cmp eax, 2\n jae 2f\n"
	"	cmp eax, 1\n jae 1f\n"
	"	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	mov eax, 100 + \\i\n"
	"	ptest xmm\\i, [rdi + VEC + \\i * 64]\n jnc 8f\n"
	"	ptest xmm\\i, [rdi + VECN + \\i * 64]\n jnz 8f\n"
	"	.endr\n"
	"	xor eax, eax\n ret\n"
	"1:\n"
	"	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	mov eax, 100 + \\i\n"
	"	vptest ymm\\i, [rdi + VEC + \\i * 64]\n jnc 8f\n"
	"	vptest ymm\\i, [rdi + VECN + \\i * 64]\n jnz 8f\n"
	"	.endr\n"
	"	xor eax, eax\n ret\n"
	"2:\n"
	"	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vpcmpeqq k1, zmm\\i, [rdi + VEC + \\i * 64]\n"
	"	kmovw eax, k1\n cmp eax, 0xff\n mov eax, 100 + \\i\n jne 8f\n"
	"	.endr\n"
	"	.irp k, 2,3,4,5,6,7\n"
	"	kmovw eax, k\\k\n cmp ax, word ptr [rdi + KM + \\k * 8]\n mov eax, 200 + \\k\n jne 8f\n"
	"	.endr\n"
	"7:	xor eax, eax\n"
	"8:	ret\n"
	".size regs_check, . - regs_check\n"
	".att_syntax prefix\n");

static const char *const gpr_names[13] = {
	"rbx", "rcx", "rdx", "rbp", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};

static __thread uint64_t tls_mark;
static uint64_t gs_target[8];

/* 0 SSE4.1, 1 AVX, 2 AVX-512F, -1 none of them (vector registers are then not checked). */
static int vector_level(void)
{
	unsigned int a, b, c, d;
	uint32_t xlo, xhi;
	int level = -1;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return -1;
	if (c & bit_SSE4_1)
		level = 0;
	if (!(c & bit_OSXSAVE) || !(c & bit_AVX))
		return level;
	__asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
	if ((xlo & 0x6) != 0x6)
		return level;
	level = 1;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX512F) && (xlo & 0xe6) == 0xe6)
		level = 2;
	return level;
}

/* Distinct values per thread (seed), register and byte, none equal to its neighbour's. */
static void ctx_fill(struct regs_ctx *ctx, uint64_t seed, int level)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->stop = &case_term;
	ctx->level = level < 0 ? 255 : (uint32_t)level;
	ctx->mxcsr_set = 0x1f80 | 0x8000 | 0x2000 | 0x0040;	/* FTZ, round down, DAZ */
	ctx->fcw_set = 0x0e7f;		/* 53-bit precision, round toward zero */
	ctx->st_in[0] = 3.25 + (double)seed;
	ctx->st_in[1] = -1234.5 - (double)seed;
	for (int i = 0; i < 13; i++)
		ctx->gpr[i] = 0x0123456789abcdefull * (uint64_t)(i + 3) ^ (seed << 40) ^ (uint64_t)i;
	for (int k = 2; k < 8; k++)
		ctx->kmask[k] = (uint16_t)(0x1111 * (unsigned)k ^ (unsigned)seed);
	for (int r = 0; r < 32; r++)
		for (int j = 0; j < 64; j++) {
			ctx->vec[r][j] = (uint8_t)(r * 7 + j * 13 + seed * 31 + 1);
			ctx->vecn[r][j] = (uint8_t)~ctx->vec[r][j];
		}
}

static void ctx_report(const char *who, const struct regs_ctx *ctx, int level)
{
	uint32_t r = ctx->result;

	if (r >= R_GPR && r < R_GPR + 13)
		case_fail("%s: %s differs", who, gpr_names[r - R_GPR]);
	else if (r >= R_VEC && r < R_VEC + 32)
		case_fail("%s: %s%u differs", who, level == 2 ? "zmm" : level == 1 ? "ymm" : "xmm",
			  r - R_VEC);
	else if (r >= R_K && r < R_K + 8)
		case_fail("%s: opmask k%u differs", who, r - R_K);
	else if (r == R_DF)
		case_fail("%s: direction flag lost", who);
	else if (r)
		case_fail("%s: regs_spin returned %u", who, r);
	if (ctx->fcw_out != ctx->fcw_set)
		case_fail("%s: x87 control word %#x, want %#x", who, ctx->fcw_out, ctx->fcw_set);
	if ((ctx->mxcsr_out & ~0x3fu) != (ctx->mxcsr_set & ~0x3fu))
		case_fail("%s: mxcsr %#x, want %#x", who, ctx->mxcsr_out, ctx->mxcsr_set);
	for (int i = 0; i < 2; i++)
		if (memcmp(&ctx->st_out[i], &ctx->st_in[i], sizeof(double)))
			case_fail("%s: st(%d) is %g, want %g", who, i, ctx->st_out[i], ctx->st_in[i]);
}

static struct regs_ctx main_ctx, thread_ctx;
static uint64_t thread_tls_seen;
static volatile int spinner_started;

static void *spinner(void *arg)
{
	tls_mark = 0x7e57ab1e00000002ull;
	spinner_started = 1;
	regs_spin(&thread_ctx);
	thread_tls_seen = tls_mark;
	return NULL;
}

static uint32_t sabotage_bits(int level)
{
	static const struct { const char *name; uint32_t bit; int level; } sab[] = {
		{ "gpr", SAB_GPR, -1 }, { "xmm", SAB_XMM, 0 }, { "ymm_upper", SAB_YMM, 1 },
		{ "zmm_upper", SAB_ZMM, 2 }, { "zmm_hi16", SAB_ZMM_HI, 2 }, { "opmask", SAB_K, 2 },
		{ "df", SAB_DF, -1 }, { "mxcsr", SAB_MXCSR, -1 }, { "x87cw", SAB_FCW, -1 },
		{ "x87st", SAB_ST, -1 },
	};
	uint32_t bits = 0;

	for (size_t i = 0; i < sizeof(sab) / sizeof(sab[0]); i++)
		if (level >= sab[i].level && case_sabotage(sab[i].name))
			bits |= sab[i].bit;
	return bits;
}

int main(int argc, char **argv)
{
	int level = vector_level();
	const char *cap = getenv("REGS_XSAVE_LEVEL");	/* to test the AVX and SSE paths too */
	unsigned long fs_before = 0, fs_after = 0, gs_after = 0;
	sigset_t old;
	pthread_t th;

	case_init(argc, argv);
	if (cap && atoi(cap) < level)
		level = atoi(cap);
	if (level < 2)
		case_say("note: no avx512f: zmm16-31 and opmasks not checked");
	if (level < 1)
		case_say("note: no avx: ymm upper halves not checked");
	if (level < 0)
		case_say("note: no sse4.1: vector registers not checked");

	tls_mark = 0x7e57ab1e00000001ull;
	if (syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_before))
		case_die("arch_prctl(ARCH_GET_FS): %m");
	if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gs_target))
		case_die("arch_prctl(ARCH_SET_GS): %m");

	ctx_fill(&main_ctx, 1, level);
	ctx_fill(&thread_ctx, 2, level);
	if (case_sabotage("thread_gpr"))
		thread_ctx.sabotage = SAB_GPR;
	/* SIGTERM goes to the main thread only: the spinner blocks it from the start. */
	case_block_term(&old);
	if (pthread_create(&th, NULL, spinner, NULL))
		case_die("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (!spinner_started)
		case_sleep_ms(1);
	/* Setup is over before the loop starts; the loop never returns before SIGTERM. */
	case_ready();
	main_ctx.sabotage = 0;
	if (getenv("CASE_SABOTAGE"))
		main_ctx.sabotage = sabotage_bits(level);
	regs_spin(&main_ctx);

	if (pthread_join(th, NULL))
		case_fail("pthread_join of the spinning thread failed");
	ctx_report("main thread", &main_ctx, level);
	ctx_report("second thread", &thread_ctx, level);

	if (case_sabotage("tls"))
		tls_mark++;
	if (case_sabotage("gsbase"))
		syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)&gs_target[1]);
	case_check(tls_mark == 0x7e57ab1e00000001ull, "main thread: TLS variable is %#llx",
		   (unsigned long long)tls_mark);
	case_check(thread_tls_seen == 0x7e57ab1e00000002ull, "second thread: TLS variable is %#llx",
		   (unsigned long long)thread_tls_seen);
	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_after);
	case_check(fs_after == fs_before, "FS base %#lx, want %#lx", fs_after, fs_before);
	syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_after);
	case_check(gs_after == (unsigned long)gs_target, "GS base %#lx, want %#lx", gs_after,
		   (unsigned long)gs_target);
	case_finish();
}
