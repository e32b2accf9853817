/*
 * cartpole.c: a deployer's loop around sbif_predict. It loads a CartPole policy (the project's demo agent,
 * conformance/golden/demo_ppo2_cartpole.sbif, or any SBIF file for CartPole-v1's Box(4) observations and Discrete(2)
 * actions), then drives gym's CartPole-v1 dynamics, simulated below, for a few episodes: one sbif_predict per step,
 * sbif_policy_reset when an episode ends. The same three calls serve every SBIF policy, feed-forward or recurrent:
 * for a recurrent one, the reset is what starts its memory afresh.
 *
 *     cc -std=c99 -O2 -I.. -o cartpole cartpole.c ../build/libsbif-native.a -lm -pthread   (after `make -C ..`)
 *     ./cartpole ../../../conformance/golden/demo_ppo2_cartpole.sbif [episodes]
 *
 * It prints each episode's return (the steps the pole stayed up, at most 500) and exits 1 with the runtime's one-line
 * message if the file cannot be used.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sbif.h"

/* gym's CartPole-v1 (gym/envs/classic_control/cartpole.py): its constants, Euler steps of TAU seconds */
#define GRAVITY 9.8
#define CART_MASS 1.0
#define POLE_MASS 0.1
#define POLE_HALF_LENGTH 0.5
#define FORCE 10.0
#define TAU 0.02
#define X_LIMIT 2.4
#define THETA_LIMIT (12.0 * 2.0 * 3.14159265358979323846 / 360.0)
#define MAX_STEPS 500

typedef struct cartpole {
    double x, x_dot, theta, theta_dot;
} cartpole;

/** A uniform draw from [-0.05, 0.05], as gym's reset draws each state variable. */
static double reset_draw(void) {
    return -0.05 + 0.1 * ((double)rand() / ((double)RAND_MAX + 1.0));
}

static void cartpole_reset(cartpole *env) {
    env->x = reset_draw();
    env->x_dot = reset_draw();
    env->theta = reset_draw();
    env->theta_dot = reset_draw();
}

/** One step pushing left (action 0) or right (1); returns whether the episode ended (pole fallen, cart out). */
static int cartpole_step(cartpole *env, int action) {
    const double total_mass = CART_MASS + POLE_MASS, pole_moment = POLE_MASS * POLE_HALF_LENGTH;
    double force = action == 1 ? FORCE : -FORCE, cos_theta = cos(env->theta), sin_theta = sin(env->theta);
    double temp = (force + pole_moment * env->theta_dot * env->theta_dot * sin_theta) / total_mass;
    double theta_acc = (GRAVITY * sin_theta - cos_theta * temp) /
                       (POLE_HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos_theta * cos_theta / total_mass));
    double x_acc = temp - pole_moment * theta_acc * cos_theta / total_mass;
    env->x += TAU * env->x_dot;
    env->x_dot += TAU * x_acc;
    env->theta += TAU * env->theta_dot;
    env->theta_dot += TAU * theta_acc;
    return fabs(env->x) > X_LIMIT || fabs(env->theta) > THETA_LIMIT;
}

int main(int argc, char **argv) {
    sbif_model *model;
    sbif_policy *policy;
    sbif_error error;
    int episodes = argc > 2 ? atoi(argv[2]) : 5, episode, status = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s POLICY.sbif [episodes]\n", argv[0]);
        return 2;
    }
    if (sbif_model_load(argv[1], &model, &error) != SBIF_OK) {
        fprintf(stderr, "%s: %s\n", sbif_status_name(error.status), error.message);
        return 1;
    }
    if (sbif_policy_new(model, &policy, &error) != SBIF_OK) {
        fprintf(stderr, "%s: %s\n", sbif_status_name(error.status), error.message);
        sbif_model_free(model);
        return 1;
    }
    srand(1);
    for (episode = 0; episode < episodes && status == 0; episode++) {
        cartpole env;
        int steps = 0, done = 0;
        cartpole_reset(&env);
        sbif_policy_reset(policy); /* a new episode: a recurrent policy's state starts from zeros again */
        while (!done && steps < MAX_STEPS) {
            float observation[4], action[1];
            observation[0] = (float)env.x;
            observation[1] = (float)env.x_dot;
            observation[2] = (float)env.theta;
            observation[3] = (float)env.theta_dot;
            if (sbif_predict(policy, observation, 4, action, 1, &error) != SBIF_OK) {
                fprintf(stderr, "%s: %s\n", sbif_status_name(error.status), error.message);
                status = 1;
                break;
            }
            done = cartpole_step(&env, (int)action[0]);
            steps++;
        }
        if (status == 0) printf("episode %d: return %d\n", episode + 1, steps);
    }
    sbif_policy_free(policy);
    sbif_model_free(model);
    return status;
}
