/* The test images compiled into the firmware: run.sh writes inputs.c from the images
 * `fomo-ad verify --export-inputs` picked (raw interleaved bytes at the model's input size). */
#ifndef INPUTS_H
#define INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "fomo_ad.h"

extern const size_t input_count;
extern const uint8_t inputs[][FOMO_AD_INPUT_WIDTH * FOMO_AD_INPUT_HEIGHT * FOMO_AD_INPUT_CHANNELS];

#endif /* INPUTS_H */
