"""
Waves at several frequencies
============================

A script in the style of a sphinx-gallery example: this docstring is the page's title and
introduction, each ``# %%`` starts a cell, and the comment block right after it is the text
shown above the cell's code. Tracked, it records every figure it draws, also the grid of
subplots filled in a loop, which no statement shows.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

# %% tags=["parameters"]
# Parameters
# ----------
# The number of points per curve, and the frequencies drawn.
n_points = 200
frequencies = [1, 2, 3, 4]

# %%
# A grid of subplots filled in a loop
# -----------------------------------
# One panel per frequency. The figure is recorded because it is open when the cell ends, under
# its suptitle: ``sine waves``.
x = np.linspace(0, 2 * np.pi, n_points)
fig, axs = plt.subplots(1, len(frequencies), figsize=(8, 2.5), sharey=True, squeeze=False)
for frequency, ax in zip(frequencies, axs[0], strict=True):
    ax.plot(x, np.sin(frequency * x))
    ax.set_title(f"{frequency} Hz")
fig.suptitle("sine waves");
plt.show()

# %%
# A number to compare runs by
# ---------------------------
# The mean power of the sum of the waves, shown as a bare name.
power = float(np.mean(np.sum([np.sin(f * x) for f in frequencies], axis=0) ** 2))
power
