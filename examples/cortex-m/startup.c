/*
 * Bare-metal start-up for a Cortex-M4F/M7 on QEMU's MPS2 boards: the vector table, the reset
 * handler (FPU on, .data copied, .bss zeroed, semihosting handles opened, main, exit) and fault
 * handlers that report through semihosting instead of hanging.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* From the linker script. */
extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];

/* newlib's librdimon: opens stdin/stdout/stderr over semihosting. */
extern void initialise_monitor_handles(void);
extern int main(void);

void reset_handler(void);
static void fault_handler(void);

typedef void (*exception_handler)(void);

/* Armv7-M vector table: the initial stack pointer, then the reset handler and 14 exceptions. */
typedef struct {
    uint32_t *initial_stack;
    exception_handler reset;
    exception_handler exceptions[14];
} vector_table;

__attribute__((section(".vectors"), used)) static const vector_table vectors = {
    __stack_top,
    reset_handler,
    {
        fault_handler, /* NMI */
        fault_handler, /* HardFault */
        fault_handler, /* MemManage */
        fault_handler, /* BusFault */
        fault_handler, /* UsageFault (e.g. an FPU instruction with the FPU off) */
        0, 0, 0, 0,    /* reserved */
        fault_handler, /* SVCall */
        fault_handler, /* DebugMonitor */
        0,             /* reserved */
        fault_handler, /* PendSV */
        fault_handler, /* SysTick */
    },
};

/* System control block registers. */
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)

void reset_handler(void)
{
    uint32_t *src = __data_load;
    uint32_t *dst;
    /* Full access to coprocessors 10 and 11 (the FPU) before any floating-point instruction. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (dst = __data_start; dst < __data_end; ++dst, ++src) {
        *dst = *src;
    }
    for (dst = __bss_start; dst < __bss_end; ++dst) {
        *dst = 0;
    }
    initialise_monitor_handles();
    exit(main());
}

static void fault_handler(void)
{
    uint32_t active;
    __asm__ volatile("mrs %0, ipsr" : "=r"(active));
    fprintf(stderr, "fault: exception %lu, CFSR 0x%08lx\n", (unsigned long)active, (unsigned long)SCB_CFSR);
    exit(3);
}
