"""Published numbers that reports show beside ours, always labelled quoted.

NCF = He et al. 2017 (WWW), by predictive factor k; Rendle et al. 2020 recast
them to embedding dimension d = 2k (MLP-3) and d = 3k (NeuMF), App. A.3.
Transcribed from the paper's Table 2 (NeuMF) and Tables 3-4 (MLP-3 row); the
factor-32 rows agree with a second transcription. Dacrema et al. 2019 and
Rendle et al. 2020 (MF, d = 192): Table 1 of Rendle et al. 2020. EASE^R
(Dacrema et al. 2019) and iALS at d = 64 (Rendle, Krichene, Zhang and Koren
2022, "Revisiting the Performance of iALS on Item Recommendation
Benchmarks") on MovieLens-1M only, as issue 15 quotes them. Gowalla (the
LightGCN split, full ranking, embedding size 64): LightGCN from its paper
(He et al., SIGIR 2020), the others from the BARS benchmark tables, as the
shared data's README and issue 17 quote them.
"""

# {dataset: {factor k: (HR@10, NDCG@10)}}
NCF_MLP3 = {
    "ml-1m": {8: (0.671, 0.399), 16: (0.684, 0.410), 32: (0.692, 0.425),
              64: (0.702, 0.426)},
    "pinterest-20": {8: (0.859, 0.536), 16: (0.865, 0.538),
                     32: (0.868, 0.542), 64: (0.869, 0.545)},
}
NCF_NEUMF_PRETRAINED = {
    "ml-1m": {8: (0.684, 0.403), 16: (0.707, 0.426), 32: (0.726, 0.445),
              64: (0.730, 0.447)},
    "pinterest-20": {8: (0.878, 0.555), 16: (0.880, 0.558),
                     32: (0.879, 0.555), 64: (0.877, 0.552)},
}
NCF_NEUMF = {  # without pretraining
    "ml-1m": {8: (0.688, 0.410), 16: (0.696, 0.420), 32: (0.701, 0.425),
              64: (0.705, 0.426)},
    "pinterest-20": {8: (0.869, 0.546), 16: (0.871, 0.547),
                     32: (0.870, 0.549), 64: (0.872, 0.551)},
}
# Series of Figure 2: (label, per-factor values, d per factor).
NCF_SERIES = (
    ("MLP [He et al. 2017, quoted]", NCF_MLP3, 2),
    ("NeuMF [He et al. 2017, quoted]", NCF_NEUMF, 3),
    ("NeuMF pretrained [He et al. 2017, quoted]", NCF_NEUMF_PRETRAINED, 3),
)

# Table 1 of Rendle et al. 2020: {method: {dataset: (HR@10, NDCG@10)}}.
TABLE1 = {
    "Popularity [Dacrema et al. 2019, quoted]": {
        "ml-1m": (0.4535, 0.2543), "pinterest-20": (0.2740, 0.1409)},
    "SLIM [Dacrema et al. 2019, quoted]": {
        "ml-1m": (0.7162, 0.4468), "pinterest-20": (0.8679, 0.5601)},
    "iALS [Dacrema et al. 2019, quoted]": {
        "ml-1m": (0.7111, 0.4383), "pinterest-20": (0.8762, 0.5590)},
    "NeuMF [Dacrema et al. 2019, quoted]": {
        "ml-1m": (0.7093, 0.4349), "pinterest-20": (0.8777, 0.5576)},
    "MF, d = 192 [Rendle et al. 2020, quoted]": {
        "ml-1m": (0.7294, 0.4523), "pinterest-20": (0.8895, 0.5794)},
    "EASE^R [Dacrema et al. 2019, quoted]": {"ml-1m": (0.7192, 0.4494)},
    "iALS, d = 64 [Rendle et al. 2022, quoted]": {"ml-1m": (0.722, 0.445)},
}

# Full ranking on item-list splits: {dataset: {method: (Recall@20, NDCG@20)}}.
FULL_RANKING_K = 20
FULL_RANKING = {
    "gowalla": {
        "LightGCN [He et al. 2020, quoted]": (0.1830, 0.1554),
        "MF-BPR [BARS, quoted]": (0.1627, 0.1378),
        "EASE^R [BARS, quoted]": (0.1765, 0.1467),
        "SimpleX [BARS, quoted]": (0.1872, 0.1557),
    },
}
