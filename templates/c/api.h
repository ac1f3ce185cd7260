{= header =}
/*
 * {= name =}: visual anomaly detection ({= scorer_summary =}) on {= input_w =}x{= input_h =}x{= input_c =} images.
 *
 * Usage:
 *     {= name =}_result result;
 *     if ({= name =}_run(pixels, &result) == 0 && result.anomalous) { ... }
 *
 * The working memory is one static arena of {= upper =}_ARENA_SIZE bytes. Define
 * {= upper =}_USER_ARENA (for this file and {= name =}.c alike) to place it yourself instead: the
 * *_with_arena functions then take it as an argument, aligned to {= upper =}_ARENA_ALIGNMENT bytes.
 * The functions are not reentrant with a shared arena; they use no heap, no stdio.
 */
#ifndef {= upper =}_H
#define {= upper =}_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define {= upper =}_INPUT_WIDTH {= input_w =}
#define {= upper =}_INPUT_HEIGHT {= input_h =}
#define {= upper =}_INPUT_CHANNELS {= input_c =}
#define {= upper =}_GRID_WIDTH {= grid_w =}
#define {= upper =}_GRID_HEIGHT {= grid_h =}
#define {= upper =}_THRESHOLD {= threshold =}
#define {= upper =}_ARENA_SIZE {= arena_bytes =}
#define {= upper =}_ARENA_ALIGNMENT {= alignment =}

typedef struct {
    /* Cell scores, row-major: cells[row * {= upper =}_GRID_WIDTH + col]. */
    float cells[{= upper =}_GRID_HEIGHT * {= upper =}_GRID_WIDTH];
    float max_score;
    float mean_score;
    /* max_score >= {= upper =}_THRESHOLD */
    int anomalous;
} {= name =}_result;

#ifndef {= upper =}_USER_ARENA
/* pixels: {= upper =}_INPUT_HEIGHT x {= upper =}_INPUT_WIDTH x {= upper =}_INPUT_CHANNELS bytes,
 * interleaved ({= pixel_format =}), scaled as the model was trained. Returns 0, or non-zero
 * when an argument is null. */
int {= name =}_run(const uint8_t *pixels, {= name =}_result *result);
/* input: the same layout as floats, already scaled. */
int {= name =}_run_f32(const float *input, {= name =}_result *result);
#else
int {= name =}_run_with_arena(const uint8_t *pixels, {= name =}_result *result, void *arena);
int {= name =}_run_f32_with_arena(const float *input, {= name =}_result *result, void *arena);
#endif

#ifdef __cplusplus
}
#endif

#endif /* {= upper =}_H */
