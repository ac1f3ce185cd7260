/*
 * Runs a generated fomo-ad C library (prefix fomo_ad) on the images in inputs.c and prints, over
 * semihosting, each cell grid, the image score and verdict, a `cells:` line with every cell score
 * at round-trip precision (what `fomo-ad verify --device-scores` compares with the reference
 * executor), and the stack high-water mark of fomo_ad_run.
 */
#include <stdint.h>
#include <stdio.h>

#include "fomo_ad.h"
#include "inputs.h"

/* From the linker script: the lowest address the stack may reach. */
extern uint32_t __stack_bottom[];

#define STACK_PAINT 0x5AFEC0DEu

static uintptr_t stack_pointer(void)
{
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* Fills the free stack below the caller's frame with a pattern (32 bytes of margin for this
 * function's own frame), so that the deepest word a later call overwrites can be found. */
__attribute__((noinline)) static void paint_stack(void)
{
    uint32_t *word;
    uint32_t *const limit = (uint32_t *)(stack_pointer() - 32u);
    for (word = __stack_bottom; word < limit; ++word) {
        *word = STACK_PAINT;
    }
}

/* The lowest stack address written since paint_stack. */
static uintptr_t stack_low_water(void)
{
    const uint32_t *word = __stack_bottom;
    while (*word == STACK_PAINT) {
        ++word;
    }
    return (uintptr_t)word;
}

static void print_grid(const fomo_ad_result *result)
{
    int row, col;
    for (row = 0; row < FOMO_AD_GRID_HEIGHT; ++row) {
        for (col = 0; col < FOMO_AD_GRID_WIDTH; ++col) {
            const float v = result->cells[row * FOMO_AD_GRID_WIDTH + col];
            /* Cells at or over the threshold are starred. */
            printf(" %7.3f%c", (double)v, v >= FOMO_AD_THRESHOLD ? '*' : ' ');
        }
        printf("\n");
    }
}

int main(void)
{
    size_t i;
    int c;
    int failures = 0;
    uintptr_t stack_used = 0;
    printf("fomo_ad on %dx%dx%d images, %dx%d cells, threshold %g, arena %d bytes\n",
           FOMO_AD_INPUT_WIDTH, FOMO_AD_INPUT_HEIGHT, FOMO_AD_INPUT_CHANNELS, FOMO_AD_GRID_WIDTH,
           FOMO_AD_GRID_HEIGHT, (double)FOMO_AD_THRESHOLD, FOMO_AD_ARENA_SIZE);
    for (i = 0; i < input_count; ++i) {
        fomo_ad_result result;
        uintptr_t sp;
        int status;
        paint_stack();
        sp = stack_pointer();
        status = fomo_ad_run(inputs[i], &result);
        if (sp - stack_low_water() > stack_used) {
            stack_used = sp - stack_low_water();
        }
        if (status != 0) {
            printf("image %u: fomo_ad_run returned %d\n", (unsigned)i, status);
            ++failures;
            continue;
        }
        printf("image %u: score %.4f, mean %.4f: %s\n", (unsigned)i, (double)result.max_score,
               (double)result.mean_score, result.anomalous ? "ANOMALOUS" : "normal");
        print_grid(&result);
        printf("cells:");
        for (c = 0; c < FOMO_AD_GRID_WIDTH * FOMO_AD_GRID_HEIGHT; ++c) {
            printf(" %.9g", (double)result.cells[c]);
        }
        printf("\n");
    }
    printf("stack used by fomo_ad_run: %u bytes (high-water mark)\n", (unsigned)stack_used);
    return failures == 0 ? 0 : 1;
}
