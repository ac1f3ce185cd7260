{= header =}
/*
 * The model as straight-line kernel calls with fixed shapes. Every activation is HWC (channels
 * fastest) and lives in one arena at an offset fomo-ad planned from the tensors' lifetimes:
 * {= arena_bytes =} bytes, the schedule's lower bound being {= lower_bound_bytes =} bytes.
 */
#include "{= name =}.h"
#include "{= name =}_weights.h"
#include "{= name =}_kernels.h"

/* The kernels index with size_t and multiply shapes up to a few million. */
typedef char {= name =}_needs_32_bit_size_t[sizeof(size_t) >= 4 ? 1 : -1];

#ifndef {= upper =}_USER_ARENA
static float arena_storage[{= upper =}_ARENA_SIZE / sizeof(float)] {= upper =}_ALIGNED;
#endif

/* input = pixel * scale + offset, per channel. */
static void load_pixels(const uint8_t *pixels, float *input)
{
    size_t p, c;
    for (p = 0; p < (size_t){= upper =}_INPUT_WIDTH * {= upper =}_INPUT_HEIGHT; ++p) {
        for (c = 0; c < {= upper =}_INPUT_CHANNELS; ++c) {
            const size_t i = p * {= upper =}_INPUT_CHANNELS + c;
            input[i] = (float)pixels[i] * {= input_scale =}[c] + {= input_offset =}[c];
        }
    }
}

static void load_floats(const float *values, float *input)
{
    size_t i;
    for (i = 0; i < (size_t){= upper =}_INPUT_WIDTH * {= upper =}_INPUT_HEIGHT * {= upper =}_INPUT_CHANNELS; ++i) {
        input[i] = values[i];
    }
}

/* The backbone: input at arena + {= input_offset_floats =}, feature map ({= feature_shape =}) at arena + {= feature_offset_floats =}. */
static void run_backbone(float *arena)
{
{= backbone_code =}
}

/* The scorer: {= scorer_summary =}. */
static void run_scorer(float *arena, {= name =}_result *result)
{
{= scorer_code =}
}

/* max, mean and verdict over the cell scores. */
static void summarise({= name =}_result *result)
{
    const size_t cells = (size_t){= upper =}_GRID_WIDTH * {= upper =}_GRID_HEIGHT;
    size_t i;
    float max = result->cells[0];
    float sum = 0.0f;
    for (i = 0; i < cells; ++i) {
        max = result->cells[i] > max ? result->cells[i] : max;
        sum += result->cells[i];
    }
    result->max_score = max;
    result->mean_score = sum / (float)cells;
    result->anomalous = max >= {= upper =}_THRESHOLD;
}

static int run_from_input(float *arena, {= name =}_result *result)
{
    run_backbone(arena);
    run_scorer(arena, result);
    summarise(result);
    return 0;
}

#ifndef {= upper =}_USER_ARENA
int {= name =}_run(const uint8_t *pixels, {= name =}_result *result)
{
    if (pixels == NULL || result == NULL) {
        return 1;
    }
    load_pixels(pixels, arena_storage + {= input_offset_floats =});
    return run_from_input(arena_storage, result);
}

int {= name =}_run_f32(const float *input, {= name =}_result *result)
{
    if (input == NULL || result == NULL) {
        return 1;
    }
    load_floats(input, arena_storage + {= input_offset_floats =});
    return run_from_input(arena_storage, result);
}
#else
int {= name =}_run_with_arena(const uint8_t *pixels, {= name =}_result *result, void *arena)
{
    if (pixels == NULL || result == NULL || arena == NULL) {
        return 1;
    }
    load_pixels(pixels, (float *)arena + {= input_offset_floats =});
    return run_from_input((float *)arena, result);
}

int {= name =}_run_f32_with_arena(const float *input, {= name =}_result *result, void *arena)
{
    if (input == NULL || result == NULL || arena == NULL) {
        return 1;
    }
    load_floats(input, (float *)arena + {= input_offset_floats =});
    return run_from_input((float *)arena, result);
}
#endif
