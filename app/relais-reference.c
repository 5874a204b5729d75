#define G_LOG_DOMAIN "relais-reference"

#include "config.h"

#include <string.h>
#include <glib/gi18n.h>

#include "relais-dossier.h"

/* The reference lists of the dossier (declared in relais-dossier.h).  Keys
 * are stored in the vault and travel between devices and versions: never
 * change or reuse one; add new ones at the end of their table. */

const RelaisChoice relais_themes[] = {
  { "logement",                  N_("Logement") },
  { "emploi",                    N_("Emploi") },
  { "formation",                 N_("Formation") },
  { "difficulte_administrative", N_("Difficultés administratives") },
  { "difficulte_financiere",     N_("Difficultés financières") },
  { "mobilite",                  N_("Mobilité") },
  { "sante",                     N_("Santé") },
  { "contraintes_familiales",    N_("Contraintes familiales") },
  { "maitrise_langue",           N_("Maîtrise de la langue française") },
  { "numerique",                 N_("Numérique") },
  { NULL, NULL }
};

const RelaisChoice relais_diagnostic_levels[] = {
  { "non-aborde",  N_("Non abordé") },
  { "sans-impact", N_("Sans impact sur le parcours") },
  { "moyen",       N_("Frein moyen") },
  { "fort",        N_("Frein fort") },
  { NULL, NULL }
};

const RelaisChoice relais_rights[] = {
  { "rsa",  N_("RSA (revenu de solidarité active)") },
  { "are",  N_("ARE (allocation d’aide au retour à l’emploi)") },
  { "ass",  N_("ASS (allocation de solidarité spécifique)") },
  { "aah",  N_("AAH (allocation aux adultes handicapés)") },
  { "rqth", N_("RQTH (reconnaissance de la qualité de travailleur handicapé)") },
  { NULL, NULL }
};

/* The national nomenclature of 2019 (décret n° 2019-14 du 8 janvier 2019),
 * levels 3 to 8, and below them people without a diploma. */
const RelaisChoice relais_education_levels[] = {
  { "infra-3",  N_("Infra 3 / sans diplôme") },
  { "niveau-3", N_("Niveau 3 (CAP, BEP)") },
  { "niveau-4", N_("Niveau 4 (baccalauréat, brevet professionnel)") },
  { "niveau-5", N_("Niveau 5 (bac + 2 : BTS, DUT, DEUST)") },
  { "niveau-6", N_("Niveau 6 (bac + 3 ou 4 : licence, BUT, master 1)") },
  { "niveau-7", N_("Niveau 7 (bac + 5 : master, diplôme d’ingénieur)") },
  { "niveau-8", N_("Niveau 8 (doctorat)") },
  { NULL, NULL }
};

const RelaisChoice relais_work_situations[] = {
  { "sans-emploi",     N_("Sans emploi") },
  { "emploi-durable",  N_("En emploi durable (CDI, CDD de 6 mois ou plus)") },
  { "emploi-precaire", N_("En emploi précaire (CDD court, intérim, temps partiel subi)") },
  { "iae",             N_("En parcours d’insertion par l’activité économique") },
  { "independant",     N_("Travailleur indépendant") },
  { "formation",       N_("En formation") },
  { "etudes",          N_("Scolarisé ou étudiant") },
  { "inactif",         N_("Sans activité professionnelle (autre)") },
  { NULL, NULL }
};

const RelaisChoice relais_contract_types[] = {
  { "cdi",         N_("CDI") },
  { "cdd",         N_("CDD") },
  { "interim",     N_("Intérim") },
  { "alternance",  N_("Alternance (apprentissage, professionnalisation)") },
  { "iae",         N_("Contrat d’insertion (IAE)") },
  { "saisonnier",  N_("Saisonnier") },
  { "independant", N_("Création d’activité, indépendant") },
  { NULL, NULL }
};

const RelaisChoice relais_working_times[] = {
  { "temps-plein",   N_("Temps plein") },
  { "temps-partiel", N_("Temps partiel") },
  { "indifferent",   N_("Indifférent") },
  { NULL, NULL }
};

const RelaisChoice relais_objective_statuses[] = {
  { "en-cours",  N_("En cours") },
  { "realise",   N_("Réalisé") },
  { "abandonne", N_("Abandonné") },
  { NULL, NULL }
};

const RelaisChoice relais_action_statuses[] = {
  { "planifiee",  N_("Planifiée") },
  { "en-cours",   N_("En cours") },
  { "realisee",   N_("Réalisée") },
  { "abandonnee", N_("Abandonnée") },
  { "annulee",    N_("Annulée") },
  { NULL, NULL }
};

const RelaisChoice relais_contract_kinds[] = {
  { "cer",   N_("CER (contrat d’engagements réciproques)") },
  { "ppae",  N_("PPAE (projet personnalisé d’accès à l’emploi)") },
  { "cej",   N_("CEJ (contrat d’engagement jeune)") },
  { "pacea", N_("PACEA (parcours contractualisé d’accompagnement vers l’emploi et l’autonomie)") },
  { NULL, NULL }
};

const RelaisChoice relais_appointment_statuses[] = {
  { "planned",   N_("Prévu") },
  { "seen",      N_("Honoré") },
  { "excused",   N_("Excusé") },
  { "no-show",   N_("Absent sans prévenir") },
  { "cancelled", N_("Annulé") },
  { NULL, NULL }
};

const RelaisChoice relais_orientation_statuses[] = {
  { "proposee", N_("Proposée") },
  { "acceptee", N_("Acceptée par la structure") },
  { "en-cours", N_("En cours") },
  { "terminee", N_("Terminée") },
  { "refusee",  N_("Refusée") },
  { NULL, NULL }
};

/* Situations of each theme of the diagnostic. */

static const RelaisChoice logement_situations[] = {
  { "sans-hebergement",    N_("Sans hébergement") },
  { "heberge-tiers",       N_("Hébergé chez un tiers") },
  { "hebergement-urgence", N_("En hébergement d’urgence ou d’insertion") },
  { "logement-precaire",   N_("Logement précaire ou insalubre") },
  { "logement-inadapte",   N_("Logement inadapté (taille, accessibilité)") },
  { "impayes-loyer",       N_("Impayés de loyer ou de charges") },
  { "expulsion",           N_("Procédure d’expulsion en cours") },
  { "demande-logement",    N_("Demande de logement social en cours") },
  { "locataire",           N_("Locataire") },
  { "proprietaire",        N_("Propriétaire") },
  { NULL, NULL }
};

static const RelaisChoice emploi_situations[] = {
  { "jamais-travaille",      N_("N’a jamais travaillé") },
  { "chomage-longue-duree",  N_("Sans emploi depuis plus d’un an") },
  { "experience-recente",    N_("Expérience professionnelle récente") },
  { "projet-a-definir",      N_("Projet professionnel à définir") },
  { "projet-a-confirmer",    N_("Projet professionnel à confirmer") },
  { "sans-cv",               N_("Pas de CV à jour") },
  { "recherche-emploi",      N_("Difficulté dans les techniques de recherche d’emploi") },
  { "inscrit-france-travail", N_("Inscrit à France Travail") },
  { "creation-activite",     N_("Projet de création d’activité") },
  { NULL, NULL }
};

static const RelaisChoice formation_situations[] = {
  { "sans-diplome",        N_("Sans diplôme ni qualification") },
  { "diplome-etranger",    N_("Diplôme étranger non reconnu") },
  { "savoirs-base",        N_("Savoirs de base à consolider") },
  { "besoin-qualification", N_("Besoin d’une qualification") },
  { "formation-en-cours",  N_("Formation en cours") },
  { "projet-vae",          N_("Projet de validation des acquis (VAE)") },
  { "decrochage",          N_("Sortie du système scolaire sans solution") },
  { NULL, NULL }
};

static const RelaisChoice administrative_situations[] = {
  { "piece-identite",      N_("Pièce d’identité manquante ou périmée") },
  { "titre-sejour",        N_("Titre de séjour à obtenir ou à renouveler") },
  { "droits-non-ouverts",  N_("Droits sociaux non ouverts ou interrompus") },
  { "domiciliation",       N_("Besoin d’une domiciliation") },
  { "sans-compte-bancaire", N_("Pas de compte bancaire") },
  { "courriers",           N_("Difficulté à comprendre les courriers administratifs") },
  { "demarches-en-ligne",  N_("Difficulté avec les démarches en ligne") },
  { "justice",             N_("Procédure judiciaire en cours") },
  { NULL, NULL }
};

static const RelaisChoice financial_situations[] = {
  { "surendettement",      N_("Surendettement") },
  { "dossier-banque-france", N_("Dossier de surendettement déposé") },
  { "dettes",              N_("Dettes ou impayés (énergie, crédit, amendes)") },
  { "ressources-faibles",  N_("Ressources insuffisantes pour les charges") },
  { "sans-ressources",     N_("Sans ressources") },
  { "gestion-budget",      N_("Difficulté à gérer le budget") },
  { "interdit-bancaire",   N_("Interdit bancaire") },
  { "mesure-protection",   N_("Mesure de protection (curatelle, tutelle, MASP)") },
  { NULL, NULL }
};

static const RelaisChoice mobilite_situations[] = {
  { "permis-b",            N_("Permis B") },
  { "permis-en-cours",     N_("Permis en cours de préparation") },
  { "permis-suspendu",     N_("Permis suspendu ou annulé") },
  { "sans-permis",         N_("Sans permis de conduire") },
  { "vehicule",            N_("Véhicule personnel en état de marche") },
  { "deux-roues",          N_("Deux-roues (vélo, scooter)") },
  { "transports-communs",  N_("Utilise les transports en commun") },
  { "aucun-transport",     N_("Aucun moyen de transport") },
  { "zone-non-desservie",  N_("Domicile mal desservi") },
  { "mobilite-psychologique", N_("Appréhension à se déplacer hors de son quartier") },
  { NULL, NULL }
};

static const RelaisChoice sante_situations[] = {
  { "sans-couverture",     N_("Sans couverture maladie ou sans complémentaire") },
  { "suivi-medical",       N_("Suivi médical en cours") },
  { "handicap",            N_("Handicap reconnu ou en cours de reconnaissance") },
  { "restrictions",        N_("Restrictions d’aptitude au travail") },
  { "souffrance-psychique", N_("Souffrance psychique") },
  { "addiction",           N_("Conduite addictive") },
  { "arret-maladie",       N_("Arrêt maladie en cours") },
  { "renoncement-soins",   N_("Renoncement aux soins") },
  { NULL, NULL }
};

static const RelaisChoice famille_situations[] = {
  { "garde-moins-3-ans",   N_("Enfant de moins de 3 ans sans solution de garde") },
  { "garde-scolaire",      N_("Garde périscolaire à organiser") },
  { "parent-isole",        N_("Parent isolé") },
  { "famille-nombreuse",   N_("Famille nombreuse") },
  { "aidant",              N_("Aidant d’un proche dépendant") },
  { "separation",          N_("Séparation en cours") },
  { "violences",           N_("Violences conjugales ou intrafamiliales") },
  { "grossesse",           N_("Grossesse") },
  { NULL, NULL }
};

static const RelaisChoice langue_situations[] = {
  { "francais-oral",       N_("Difficulté en français à l’oral") },
  { "francais-ecrit",      N_("Difficulté en français à l’écrit") },
  { "illettrisme",         N_("Situation d’illettrisme") },
  { "fle",                 N_("Besoin de français langue étrangère") },
  { "calcul",              N_("Difficulté en calcul") },
  { "interprete",          N_("Besoin d’un interprète") },
  { NULL, NULL }
};

static const RelaisChoice numerique_situations[] = {
  { "absence-connexion",   N_("Absence de connexion") },
  { "sans-equipement",     N_("Sans ordinateur ni smartphone") },
  { "smartphone-seul",     N_("Smartphone seulement") },
  { "sans-adresse-mail",   N_("Pas d’adresse électronique") },
  { "usages-base",         N_("Difficulté avec les usages de base") },
  { "accompagnement-demarches", N_("Besoin d’accompagnement pour les démarches en ligne") },
  { "autonome",            N_("Autonome avec le numérique") },
  { NULL, NULL }
};

static const struct {
  const char         *theme;
  const RelaisChoice *situations;
} theme_situations[] = {
  { "logement",                  logement_situations },
  { "emploi",                    emploi_situations },
  { "formation",                 formation_situations },
  { "difficulte_administrative", administrative_situations },
  { "difficulte_financiere",     financial_situations },
  { "mobilite",                  mobilite_situations },
  { "sante",                     sante_situations },
  { "contraintes_familiales",    famille_situations },
  { "maitrise_langue",           langue_situations },
  { "numerique",                 numerique_situations },
};

const RelaisChoice *
relais_theme_situations (const char *theme)
{
  if (theme == NULL)
    return NULL;
  for (guint i = 0; i < G_N_ELEMENTS (theme_situations); i++)
    if (strcmp (theme_situations[i].theme, theme) == 0)
      return theme_situations[i].situations;
  return NULL;
}

gboolean
relais_choice_has (const RelaisChoice *choices,
                   const char         *key)
{
  g_return_val_if_fail (choices != NULL, FALSE);

  if (key == NULL)
    return FALSE;
  for (; choices->key != NULL; choices++)
    if (strcmp (choices->key, key) == 0)
      return TRUE;
  return FALSE;
}

const char *
relais_choice_label (const RelaisChoice *choices,
                     const char         *key)
{
  g_return_val_if_fail (choices != NULL, NULL);

  if (key == NULL)
    return NULL;
  for (; choices->key != NULL; choices++)
    if (strcmp (choices->key, key) == 0)
      return g_dgettext (GETTEXT_PACKAGE, choices->label);
  return NULL;
}

GDateTime *
relais_hlc_to_date_time (guint64 hlc)
{
  g_autoptr(GDateTime) utc = g_date_time_new_from_unix_utc ((gint64) (hlc >> 16) / 1000);

  if (utc == NULL)
    return NULL;
  /* Milliseconds are kept: two changes in one second stay in order. */
  {
    g_autoptr(GDateTime) precise = g_date_time_add (utc, (GTimeSpan) ((hlc >> 16) % 1000) * 1000);

    return g_date_time_to_local (precise);
  }
}
